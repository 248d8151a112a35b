"""`medadapt stage RULE --job JSON [--log-file FILE]`: run one workflow stage, as a shell rule does.

The CLI twin of the workflow's `script:` rules: shell rules (training under srun/torchrun, the judge
server) call it, and a user can rerun a job by hand with the JSON its provenance recorded. The job
JSON holds the rule's named `input`, `output` and `params`, plus `threads` and `wildcards`; it goes
through the same adapter (`medadapt.runtime.run_job`) as every other rule.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medadapt.runtime import EXIT_DETERMINISTIC, Job, is_deterministic, run_job
from medadapt.stages import STAGES


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("stage", help="run one workflow stage from a job description",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rule", choices=sorted(STAGES), metavar="RULE", help="the rule whose stage to run")
    p.add_argument("--job", required=True,
                   help="the job as JSON (or @FILE): {input, output, params, threads, wildcards}")
    # Not --log: torchrun, which runs this as its training script, takes any prefix of its own
    # --log-dir/--logs-specs as its own option.
    p.add_argument("--log-file", help="append the stage's stdout/stderr to this file")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """0, or EXIT_DETERMINISTIC for a failure a retry would repeat (the log holds the traceback);
    other failures raise (exit 1), and a signal ends the process as the signal does."""
    text = Path(args.job[1:]).read_text() if args.job.startswith("@") else args.job
    try:
        run_job(Job.from_json(args.rule, text, log=args.log_file))
    except Exception as exc:
        if not is_deterministic(exc):
            raise
        print(f"medadapt stage {args.rule}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_DETERMINISTIC
    return 0
