"""`medadapt config-docs`: write the config reference (config/README.md) from config/schema.yaml."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medadapt.config import SCHEMA, config_reference

README = SCHEMA.with_name("README.md")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("config-docs", help="write config/README.md from the schema",
                       description=__doc__)
    p.add_argument("--out", default=str(README), help=f"where to write (default: {README.name} beside the schema)")
    p.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date; write nothing")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    text = config_reference()
    if args.check:
        out = Path(args.out)
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is out of date: run `medadapt config-docs`", file=sys.stderr)
            return 1
        return 0
    from medadapt.io import atomic_path

    with atomic_path(args.out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0
