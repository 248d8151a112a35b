"""`medadapt preflight [--configfile CONFIG] [--profile DIR]`: before the first submission, check
every job of the grid against the cluster (`scontrol show partition/node`) and what the jobs need
(account, images, container runtime, caches, API keys), the free disk space against the study's
estimated footprint and the judge's estimated cost against `judge.max_cost`. Prints the estimates
and a table of the problems; exit 1 if there is any, 0 if none (see `medadapt.preflight`)."""
from __future__ import annotations

import argparse

from medadapt.config import load
from medadapt.preflight import format_table, load_profile, preflight


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("preflight", help="check the grid's jobs against the cluster before submitting",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config/config.yaml", help="the workflow config (default: %(default)s)")
    p.add_argument("--profile", help="the Snakemake profile directory (time limits, account, default partition)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    jobs, problems, report = preflight(load(args.configfile), load_profile(args.profile))
    print(f"{len(jobs)} job shapes checked")
    print("\n".join(report))
    if problems:
        print(format_table(problems))
        return 1
    print("no problems found")
    return 0
