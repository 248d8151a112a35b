"""`medadapt judge`: judge two response files against each other, every prompt in both orders."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from medadapt import config
from medadapt.cli import UsageError
from medadapt.judge.config import JudgeConfig
from medadapt.judge.pairs import check_matching, load_responses, run_pair
from medadapt.llm import LLMError
from medadapt.llm.keys import MissingKeyError

DESCRIPTION = """\
Judge two response files (JSONL rows as the generate stage writes them: id, instruction, optional
context, response) with the workflow's pairwise judge: every prompt twice, the candidate shown
first as A, then the baseline. Writes one row per game (.csv or .parquet by the suffix of --out)
with prompt_id, model_a, model_b (the models shown as A and B) and winner (A, B, 0 for a tie;
empty when the judge gave no valid verdict), the table `medadapt davidson` reads, plus the
workflow's judgment columns (order, outcome from the candidate's view, tokens, cache_hit, raw,
status, attempts, invalid_reason).

A verdict is an answer that is one JSON object with winner "A", "B" or "0" (optionally inside one
```json code fence); anything else is asked again (judge.max_invalid_retries) and then recorded
without a winner. When more than judge.max_invalid_fraction of the games end without a verdict,
the command fails (exit code 1) and names the counts; the valid verdicts stay in the cache.

Settings: the `judge:` block of --config (a YAML file like the workflow config), with the
schema's defaults for every key it leaves out; --model, --base-url and --api-key-env override the
block. Without --config, the block is the schema's defaults plus these flags: --model is then
required, and without --base-url the requests go to the OpenAI API, which needs --api-key-env.
The API key is read from the environment variable that api_key_env names, never from a file or
the command line.
"""

EPILOG = """\
examples:
  medadapt judge cand.jsonl base.jsonl --out games.csv --config config/config.yaml \\
      --cache-dir judge-cache --ledger usage.jsonl
  medadapt judge cand.jsonl base.jsonl --out games.parquet --model my-judge \\
      --base-url http://127.0.0.1:8000/v1
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("judge", help="judge two response files pairwise, in both orders",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidate", help="the candidate's responses (JSONL)")
    p.add_argument("baseline", help="the baseline's responses to the same prompts (JSONL)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="judgments table, one row per game (.csv or .parquet)")
    p.add_argument("--config", metavar="YAML", help="YAML file with a judge: block")
    p.add_argument("--model", help="judge model (overrides judge.model)")
    p.add_argument("--base-url", metavar="URL",
                   help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                        "(overrides judge.base_url)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the API key (overrides judge.api_key_env)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="answer cache: a rerun sends only what is not cached (default: no cache)")
    p.add_argument("--ledger", metavar="FILE",
                   help="append one usage record per answer received (status, tokens, cost) to "
                        "FILE (.jsonl, or .csv)")
    p.add_argument("--candidate-name", metavar="NAME",
                   help="the candidate's name in model_a/model_b (default: the file's stem)")
    p.add_argument("--baseline-name", metavar="NAME",
                   help="the baseline's name in model_a/model_b (default: the file's stem)")
    p.set_defaults(func=run)
    return p


def _block(path: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """The resolved judge block: the file's (or none), the flags on top, the schema's defaults."""
    block: dict[str, Any] = {}
    if path is not None:
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"--config {path}: cannot read it ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise UsageError(f"--config {path}: not valid YAML ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("judge"), dict):
            raise UsageError(f"--config {path}: no judge: block (a mapping) at the top level")
        block = dict(doc["judge"])
    for key in ("model", "base_url", "api_key_env"):
        if getattr(args, key) is not None:
            block[key] = getattr(args, key)
    if "model" not in block:
        raise UsageError("no judge model: give --model, or --config with judge.model")
    try:
        return config.resolve_block("judge", block, source=path or "command line")
    except config.ConfigError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    for what, path in (("candidate", args.candidate), ("baseline", args.baseline)):
        if not os.path.isfile(path):
            raise UsageError(f"{what} {path}: no such file")
    if not args.out.endswith((".csv", ".parquet")):
        raise UsageError(f"--out {args.out}: expected a .csv or .parquet file")
    block = _block(args.config, args)
    cand_name = args.candidate_name or Path(args.candidate).stem
    base_name = args.baseline_name or Path(args.baseline).stem
    if cand_name == base_name:
        raise UsageError(f"both models would be called {cand_name!r}: give --candidate-name "
                         "and --baseline-name")
    try:  # bad input is a usage error before anything is sent
        check_matching(load_responses(args.candidate), load_responses(args.baseline),
                       args.candidate, args.baseline)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if block["batch"] and not args.cache_dir:
        raise UsageError("judge.batch needs --cache-dir (submitted batches are remembered there, "
                         "so that a rerun resumes them)")
    try:
        usage = run_pair(args.candidate, args.baseline, args.out, JudgeConfig.from_block(block),
                         args.cache_dir, args.ledger, None, cand_name, base_name)
    except MissingKeyError as exc:
        raise UsageError(str(exc)) from None
    except LLMError as exc:  # the endpoint refused, kept failing, or gave too few verdicts
        print(f"medadapt judge: failed: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"{args.out}: {usage['requests']} games ({cand_name} vs {base_name}): "
          f"{usage['valid']} with a verdict, {usage['invalid'] + usage['missing']} without; "
          f"{usage['cache_hits']} from the cache, {usage['sent']} requests sent, "
          f"{usage['answers']} answers received", flush=True)
    return 0
