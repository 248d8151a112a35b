"""The `medadapt` console script: the study's statistics outside Snakemake, and the CLI twin of the
workflow's shell rules.

    medadapt flops --config CONFIG_JSON --tokens N       training FLOPs of a model shape (6·N·D)
    medadapt davidson JUDGMENTS --out FILE ...           Davidson fit of a judgments table
    medadapt judge CANDIDATE BASELINE --out FILE ...     pairwise judging of two response files
    medadapt stage RULE --job JSON [--log-file FILE]     run one workflow stage (shell rules use this)
    medadapt config-docs [--check]                       write config/README.md from the schema
    medadapt labelstudio export|import ...               validation labels via Label Studio
    medadapt preflight [--configfile C] [--profile P]     check the grid's jobs against the cluster

Each subcommand is a module here with `add_parser(subparsers)`; its parser's `func(args)` returns
the exit code. Bad input raises `UsageError` (or a ValueError/FileNotFoundError from the library,
whose messages name the file and field): printed as `medadapt <cmd>: error: ...`, exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("flops", "davidson", "judge", "stage", "config_docs", "labelstudio", "preflight")


class UsageError(ValueError):
    """Bad input on the command line or in a file it names: exit code 2."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of `command` alone (a worker started by torchrun need not
    import the other subcommands' modules)."""
    parser = argparse.ArgumentParser(prog="medadapt", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {name.replace("_", "-"): name for name in SUBCOMMANDS}
    for name in [modules[command]] if command in modules else SUBCOMMANDS:
        importlib.import_module(f"medadapt.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"medadapt {args.command}: error: {message}", file=sys.stderr)
        return 2


def main_exit() -> None:
    """The console script's entry point."""
    sys.exit(main())
