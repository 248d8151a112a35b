"""`medadapt labelstudio`: the human-labelling round trip through Label Studio.

    medadapt labelstudio export SAMPLE --out TASKS.json [--config-out CONFIG.xml] [--n N --seed S]
    medadapt labelstudio import EXPORT.json --out VALIDATION.jsonl [--merge EXISTING.jsonl]

`export` writes documents of the annotation sample (results/corpus/sample.parquet) as Label Studio
import tasks: the sample's validation documents, or with --n a seeded random draw for a first round;
paste CONFIG.xml as the project's labelling interface. `import` turns Label Studio's JSON export
into the validation file (corpus.validation), one label column per annotator.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from medadapt.cli import UsageError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("labelstudio", help="export tasks for / import labels from Label Studio",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = p.add_subparsers(dest="step", required=True, metavar="STEP")
    ex = steps.add_parser("export", help="documents of the sample as Label Studio import tasks")
    ex.add_argument("sample", help="annotation sample (parquet: id, text, is_validation)")
    ex.add_argument("--out", required=True, help="tasks file to write (JSON)")
    ex.add_argument("--config-out", help="labelling interface to write (XML; default: beside --out)")
    ex.add_argument("--n", type=int, help="draw N random documents instead of the validation documents")
    ex.add_argument("--seed", type=int, default=0, help="seed of the --n draw (default 0)")
    ex.set_defaults(func=run_export)
    im = steps.add_parser("import", help="Label Studio JSON export -> validation file")
    im.add_argument("export", help="Label Studio JSON export (Export -> JSON)")
    im.add_argument("--out", required=True, help="validation file to write (JSONL {id, labels})")
    im.add_argument("--merge", help="existing validation file whose annotators are kept")
    im.set_defaults(func=run_import)
    return p


def _existing(path: str) -> str:
    if not Path(path).is_file():
        raise UsageError(f"{path} does not exist")
    return path


def run_export(args) -> int:
    import polars as pl

    from medadapt.corpus import labelstudio as ls

    sample = _existing(args.sample)
    config_out = args.config_out or str(Path(args.out).with_name("label_config.xml"))
    if args.n is not None:
        if args.n < 1:
            raise UsageError(f"--n must be at least 1, got {args.n}")
        docs = ls.draw_documents(sample, args.n, args.seed)
    else:
        docs = pl.read_parquet(sample, columns=["id", "text", "is_validation"])
        docs = docs.filter(pl.col("is_validation")).select("id", "text")
        if docs.is_empty():
            raise UsageError(f"{sample}: no validation documents; use --n to draw documents to label")
    n = ls.write_tasks(docs, args.out, config_out)
    print(f"wrote {n} tasks to {args.out} and the labelling interface to {config_out}")
    return 0


def run_import(args) -> int:
    from medadapt.corpus.labelstudio import import_export

    summary = import_export(_existing(args.export), args.out,
                            _existing(args.merge) if args.merge else None)
    print(f"wrote {summary['documents']} documents, annotators {summary['annotators']} to {args.out} "
          f"({summary['annotations']} annotations used, {summary['cancelled']} skipped as cancelled, "
          f"{summary['no_choice']} without a choice)")
    return 0
