"""`medadapt flops` on the published shapes of the paper's eight models reproduces Table 2, and
bad input is a usage error (exit code 2).

The in-process tests call the subcommand through its own parser (`add_parser` / `func`); the
subprocess tests run `python -m medadapt`, so they need the `medadapt` dispatcher
(medadapt/__main__.py). test_cli_davidson.py uses the helpers.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from medadapt.cli import UsageError
from medadapt.cli import flops as flops_cli
from test_train_compute import CONFIGS, TABLE2, TOKENS

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"


def invoke(module, argv: list[str]) -> int:
    """Run one subcommand in process, as the dispatcher would, through its own parser."""
    parser = argparse.ArgumentParser(prog="medadapt")
    module.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def medadapt(*argv: str) -> subprocess.CompletedProcess:
    """The real command line: `python -m medadapt ...` with this tree's library on the path."""
    return subprocess.run([sys.executable, "-m", "medadapt", *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SCRIPTS)}, timeout=300)


def fields(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split())


@pytest.mark.slow  # eight processes, each importing torch: about a minute on two cores
def test_cli_reproduces_table2_for_all_eight_models():
    """The acceptance check: each model's FLOPs through the real command, within 2 % of Table 2."""
    with ThreadPoolExecutor(max_workers=4) as pool:  # each process spends seconds importing torch
        runs = dict(zip(TABLE2, pool.map(lambda name: medadapt(
            "flops", "--config", str(CONFIGS / f"{name}.json"), "--tokens", "9.5e9"), TABLE2)))
    for name, run in runs.items():
        assert run.returncode == 0, (name, run.stderr)
        out = fields(run.stdout.strip())
        assert float(out["flops"]) == pytest.approx(TABLE2[name], rel=0.02), name
        assert out["tokens"] == "9500000000"


def test_cli_usage_error_exit_code(tmp_path):
    run = medadapt("flops", "--config", str(tmp_path / "missing.json"), "--tokens", "1e9")
    assert run.returncode == 2
    assert "medadapt flops: error:" in run.stderr and "missing.json: no such file" in run.stderr
    assert medadapt("flops", "--help").returncode == 0


@pytest.mark.parametrize("name", list(TABLE2))
def test_in_process_table2(name, capsys):
    assert invoke(flops_cli, ["flops", "--config", str(CONFIGS / f"{name}.json"),
                              "--tokens", "9.5e9"]) == 0
    out = fields(capsys.readouterr().out.strip())
    assert float(out["flops"]) == pytest.approx(TABLE2[name], rel=0.02)
    assert set(out) == {"flops", "tokens", "non_embedding_params", "params", "model_type"}
    assert float(out["flops"]) == pytest.approx(6 * int(out["non_embedding_params"]) * TOKENS, rel=1e-4)


def test_json_output_and_direct_call(capsys):
    path = str(CONFIGS / "Qwen2.5-7B-Instruct.json")
    assert invoke(flops_cli, ["flops", "--config", path, "--tokens", "9500000000", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    report = flops_cli.flops_report(path, 9.5e9)
    assert printed == report
    # the untied head (152064 x 3584) counts: all parameters but the input embedding
    assert report["params"] - report["non_embedding_params"] == 152064 * 3584
    assert report["flops"] == 6 * report["non_embedding_params"] * 9.5e9 == pytest.approx(4.00e20, rel=0.02)
    assert report["model_type"] == "qwen2" and report["tokens"] == 9_500_000_000


def test_bad_input_is_a_usage_error(tmp_path):
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "odd.json").write_text(json.dumps({"model_type": "qwen99"}))
    cases = {str(tmp_path / "missing.json"): "missing.json: no such file",
             str(tmp_path / "text.json"): "not a JSON file",
             str(tmp_path / "odd.json"): "unknown model_type 'qwen99'"}
    for path, message in cases.items():
        with pytest.raises(UsageError, match=message):
            invoke(flops_cli, ["flops", "--config", path, "--tokens", "1e9"])
    good = str(CONFIGS / "Qwen3-0.6B.json")
    for tokens in ("0", "-5e9", "nan", "inf"):
        with pytest.raises(UsageError, match="--tokens must be a positive number"):
            invoke(flops_cli, ["flops", "--config", good, f"--tokens={tokens}"])


def test_unparsable_tokens_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        invoke(flops_cli, ["flops", "--config", "x.json", "--tokens", "lots"])
    assert exc.value.code == 2 and "not a number: 'lots'" in capsys.readouterr().err
