"""`medadapt flops`: training FLOPs of a model shape for a number of tokens (medadapt.train.compute)."""
from __future__ import annotations

import argparse
import json
import math

from medadapt.cli import UsageError
from medadapt.train.compute import load_config, param_counts, train_flops

DESCRIPTION = """\
Print the training compute of a model shape: FLOPs = 6 * N * D for D tokens, where N counts all
parameters except the input embedding (an untied LM head counts; a tied head is the embedding
itself). The model is built from its config on PyTorch's meta device: no weights, no memory.

Output (one line, key=value): flops, tokens, non_embedding_params, params (all, tied weights once),
model_type; --json prints the same as a JSON object."""


def _tokens(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (e.g. 9.5e9)") from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("flops", help="training FLOPs of a model shape (6·N·D)",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, metavar="CONFIG_JSON",
                   help="a Hugging Face config.json (or the model directory holding it)")
    p.add_argument("--tokens", required=True, type=_tokens, metavar="N",
                   help="training tokens, e.g. 9.5e9")
    p.add_argument("--json", action="store_true", help="print a JSON object instead")
    p.set_defaults(func=run)
    return p


def flops_report(config_path: str, tokens: float) -> dict:
    """{flops, tokens, non_embedding_params, params, model_type} for a config.json and a token count."""
    if not (math.isfinite(tokens) and tokens > 0):
        raise UsageError(f"--tokens must be a positive number, got {tokens:g}")
    try:
        config = load_config(config_path)
        total, non_embedding = param_counts(config)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    return {"flops": train_flops(non_embedding, tokens),
            "tokens": int(tokens) if float(tokens).is_integer() else tokens,
            "non_embedding_params": non_embedding, "params": total,
            "model_type": config.model_type}


def run(args: argparse.Namespace) -> int:
    report = flops_report(args.config, args.tokens)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"flops={report['flops']:.4e} tokens={report['tokens']} "
              f"non_embedding_params={report['non_embedding_params']} params={report['params']} "
              f"model_type={report['model_type']}")
    return 0
