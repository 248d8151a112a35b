"""`medadapt davidson`: a Davidson leaderboard of the models in a judgments table (see
medadapt.leaderboard for the table contract and the fit)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from medadapt.cli import UsageError
from medadapt.config import schema_default
from medadapt.davidson import PRIOR_STRENGTH

# The workflow's defaults (config/schema.yaml), so the command and a run agree.
N_BOOT = schema_default("fit.n_boot")
SEED = schema_default("seed")
ORDER_EFFECT = schema_default("fit.order_effect")

DESCRIPTION = """\
Fit the Davidson (1970) paired-comparison model with ties to a judgments table and write one row
per model: model, strength (log scale, mean zero over models), share (pi/(pi + pi_reference); the
reference's own share is 0.5), ci_low, ci_high (percentile bootstrap of the share over prompts:
each prompt_id's games are resampled together, or single rows when there is no prompt_id),
expected_score ((wins + ties/2)/games) with expected_ci_low, expected_ci_high, nu (the tie
parameter, shared), gamma (the judge's position effect: the response shown first, A, plays with its
strength times gamma; empty with --no-order-effect), games, wins, ties, losses, degenerate (the
model's strength has no finite estimate, e.g. it never lost; the weak prior kept it finite).

JUDGMENTS is a CSV or parquet file (by suffix) with columns model_a, model_b, winner (A: model_a
won, B: model_b won, 0: tie; empty: no valid verdict, left out of the fit and counted) and
optionally prompt_id."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("davidson", help="Davidson leaderboard of a judgments table",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("judgments", metavar="JUDGMENTS", help="games table (.csv or .parquet)")
    p.add_argument("--out", required=True, metavar="FILE", help="leaderboard to write (.csv)")
    p.add_argument("--reference", metavar="MODEL",
                   help="the model every share is taken against (default: the model in the most "
                        "games with a valid verdict; on a tie, the first by name)")
    p.add_argument("--bootstrap", type=int, default=N_BOOT, metavar="N",
                   help=f"bootstrap replicates for the intervals; 0 = no intervals (default {N_BOOT})")
    p.add_argument("--order-effect", action=argparse.BooleanOptionalAction, default=ORDER_EFFECT,
                   help="fit the position effect gamma (needs some pairs judged in both "
                        f"arrangements; default {'on' if ORDER_EFFECT else 'off'}, as the workflow)")
    p.add_argument("--prior-strength", type=float, default=PRIOR_STRENGTH, metavar="X",
                   help="precision of the Gaussian prior on log-strengths, log nu and log gamma, used "
                        "only when the data have no finite maximum (a model never loses, no game is "
                        "tied) to keep the fit finite; 0 makes such data an error "
                        f"(default {PRIOR_STRENGTH:g})")
    p.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED})")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the `medadapt` parser imports every subcommand module.
    from medadapt.io import write_table
    from medadapt.leaderboard import leaderboard, read_games

    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if not (math.isfinite(args.prior_strength) and args.prior_strength >= 0):
        raise UsageError(f"--prior-strength must be a finite number >= 0, got {args.prior_strength}")
    if Path(args.out).suffix not in (".csv", ".parquet"):
        raise UsageError(f"--out {args.out}: expected a .csv (or .parquet) file")
    try:
        games = read_games(args.judgments)
        table, info = leaderboard(games, reference=args.reference, n_boot=args.bootstrap,
                                  seed=args.seed, order_effect=args.order_effect,
                                  prior_strength=args.prior_strength)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    write_table(args.out, table)
    gamma = f"; gamma {info['gamma']:.4g}" if info["gamma"] is not None else ""
    print(f"{info['models']} models, {info['games']} games with a verdict "
          f"({info['invalid']} without a valid verdict, left out); reference {info['reference']}; "
          f"nu {info['nu']:.4g}{gamma}")
    if info["status"] == "degenerate":
        print(f"warning: no finite maximum-likelihood estimate: {info['runaway']} (the prior kept "
              "the fit finite; read those numbers as bounds)")
    elif info["status"] != "converged":
        print(f"warning: the fit did not converge ({info['message']})")
    width = max(len(m) for m in table["model"])
    for row in table.iter_rows(named=True):
        ci = (f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if row["ci_low"] is not None else "")
        print(f"  {row['model']:<{width}}  strength {row['strength']:+.3f}  share {row['share']:.3f}"
              f"{ci}  expected score {row['expected_score']:.3f}  "
              f"W/T/L {row['wins']}/{row['ties']}/{row['losses']}")
    print(f"wrote {args.out}")
    return 0
