"""Paired MCQA tests along each trajectory, the milestones they give, and item-bootstrap intervals
on G_rel.

A run is one adapted (family, size). Its trajectories are the source model (0 tokens) followed by
the merged checkpoints cNN ("merged") or by the raw CPT checkpoints raw-cNN ("raw"). Every
checkpoint is compared with the source ("source"; the source itself is not) and every point,
the source included, with the next-larger model ("next"), on each task and on all items of all
tasks at once ("pooled", which weighs each task by its item count, unlike the macro mean).

Test: exact McNemar on the items both models answered (`medadapt.significance`). Correction: Holm
over the points of one trajectory against one baseline on one task: the family of tests behind
"the first checkpoint that ..." is the whole trajectory, so its family-wise error rate is alpha.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import polars as pl

from medadapt.significance import holm, mcnemar_exact, paired, ratio_interval, resample_indices, stable_seed
from medadapt.tables.common import size_order, variant_of
from medadapt.tables.items import POOLED, ModelItems, check_paired

Key = tuple[str, str, str]
TEST_COLUMNS = ["family", "size", "next_size", "trajectory", "ckpt", "variant", "baseline",
                "baseline_model", "task", "tokens", "flops", "n", "both_correct", "ckpt_only",
                "baseline_only", "both_wrong", "acc", "acc_baseline", "acc_diff", "p_value",
                "p_holm", "significant", "direction"]
MILESTONE_COLUMNS = ["family", "size", "next_size", "trajectory", "task", "alpha", "checkpoints",
                     "first_gain_ckpt", "first_gain_tokens", "first_gain_flops",
                     "first_gain_sustained", "gains", "parity_ckpt", "parity_tokens",
                     "parity_flops", "parity_sustained", "below_next"]
INTERVAL_COLUMNS = ["g_rel_source_lo", "g_rel_source_hi", "g_rel_next_lo", "g_rel_next_hi"]
TRAJECTORIES = ("merged", "raw")


def _test_schema() -> dict:
    return {"family": pl.String, "size": pl.String, "next_size": pl.String, "trajectory": pl.String,
            "ckpt": pl.String, "variant": pl.String, "baseline": pl.String,
            "baseline_model": pl.String, "task": pl.String, "tokens": pl.Int64,
            "flops": pl.Float64, "n": pl.Int64, "both_correct": pl.Int64, "ckpt_only": pl.Int64,
            "baseline_only": pl.Int64, "both_wrong": pl.Int64, "acc": pl.Float64,
            "acc_baseline": pl.Float64, "acc_diff": pl.Float64, "p_value": pl.Float64,
            "p_holm": pl.Float64, "significant": pl.Boolean, "direction": pl.String}


def _compute_of(compute: pl.DataFrame) -> dict[Key, tuple[int, float]]:
    """(tokens, FLOPs) of every model key; a raw checkpoint has those of the cNN of its number."""
    out = {(f, s, c): (t, fl) for f, s, c, t, fl in
           compute.select("family", "size", "ckpt", "tokens", "flops").rows()}
    for (f, s, c), v in list(out.items()):
        if c != "base":
            out[(f, s, f"raw-{c}")] = v
    return out


def _runs(items: Mapping[Key, ModelItems], pairs: Sequence[Sequence[str | None]],
          compute: pl.DataFrame):
    """Per adapted (family, size): next size and each trajectory's checkpoints in token order."""
    comp = _compute_of(compute)
    for family, size, nxt in pairs:
        family, size = str(family), str(size)
        nxt = str(nxt) if nxt not in (None, "") else None
        if (family, size, "base") not in items:
            raise ValueError(f"MCQA items: no items for the source model ({family}, {size}, base)")
        if nxt and (family, nxt, "base") not in items:
            raise ValueError(f"MCQA items: no items for the next-larger model ({family}, {nxt}, base)")
        trajectories = {}
        for view in TRAJECTORIES:
            ckpts = [c for (f, s, c) in items if (f, s) == (family, size) and c != "base"
                     and variant_of(c) == view]
            missing = [c for c in ckpts if (family, size, c) not in comp]
            if missing:
                raise ValueError(f"MCQA items: no compute row (checkpoints.csv) for "
                                 f"({family}, {size}, {missing[0]})")
            trajectories[view] = sorted(ckpts, key=lambda c: (comp[(family, size, c)][0], c))
        yield family, size, nxt, trajectories, comp


def mcqa_tests_table(items: Mapping[Key, ModelItems], pairs: Sequence[Sequence[str | None]],
                     compute: pl.DataFrame, alpha: float = 0.05) -> pl.DataFrame:
    """One row per (run, trajectory, point, baseline, task or pooled): the paired 2x2 counts, the
    accuracies, the exact McNemar p-value, its Holm adjustment over the trajectory's points and
    whether it is significant at `alpha` (adjusted p <= alpha). direction: better | worse | equal
    (the sign of ckpt_only - baseline_only)."""
    rows = []
    for family, size, nxt, trajectories, comp in _runs(items, pairs, compute):
        source = items[(family, size, "base")]
        tasks = sorted(source.tasks) + [POOLED]
        baselines = [("source", size, source)]
        if nxt:
            baselines.append(("next", nxt, items[(family, nxt, "base")]))
        for view, ckpts in trajectories.items():
            if not ckpts:
                continue
            for baseline, bl_size, bl in baselines:
                points = ckpts if baseline == "source" else ["base", *ckpts]
                for ckpt in points:
                    check_paired(items[(family, size, ckpt)], bl)
                for task in tasks:
                    family_rows = []
                    for ckpt in points:
                        model = items[(family, size, ckpt)]
                        t = paired(model.correct(task), bl.correct(task))
                        tokens, flops = comp.get((family, size, ckpt), (0, 0.0))
                        family_rows.append({
                            "family": family, "size": size, "next_size": nxt, "trajectory": view,
                            "ckpt": ckpt, "variant": variant_of(ckpt), "baseline": baseline,
                            "baseline_model": f"{family}/{bl_size}/base", "task": task,
                            "tokens": tokens, "flops": flops, "n": t.n, "both_correct": t.both,
                            "ckpt_only": t.a_only, "baseline_only": t.b_only, "both_wrong": t.neither,
                            "acc": t.acc_a, "acc_baseline": t.acc_b, "acc_diff": t.acc_a - t.acc_b,
                            "p_value": mcnemar_exact(t),
                            "direction": ("better" if t.a_only > t.b_only else
                                          "worse" if t.a_only < t.b_only else "equal")})
                    adjusted, reject = holm([r["p_value"] for r in family_rows], alpha)
                    for r, p, rej in zip(family_rows, adjusted, reject):
                        r["p_holm"], r["significant"] = float(p), bool(rej)
                    rows += family_rows
    df = pl.DataFrame(rows, schema=_test_schema()) if rows else pl.DataFrame(schema=_test_schema())
    if df.is_empty():
        return df.select(TEST_COLUMNS)
    return df.select(TEST_COLUMNS).sort(["family", size_order(df), "trajectory", "baseline", "task",
                                         "tokens", "ckpt"])


def _first(rows: list[dict], hit) -> tuple[dict | None, bool | None]:
    """The first row (token order) where `hit` holds, and whether it holds at every later row."""
    for k, r in enumerate(rows):
        if hit(r):
            return r, all(hit(x) for x in rows[k + 1:])
    return None, None


def milestones_table(tests: pl.DataFrame, alpha: float = 0.05) -> pl.DataFrame:
    """Per run, trajectory and task (or pooled): the first checkpoint whose gain over the source is
    significant, and the first point (the source included) whose accuracy is no longer significantly
    below the next-larger model's ("parity"), with their tokens and FLOPs; `*_sustained`: every
    later checkpoint keeps it; gains / below_next: how many points are significantly above the
    source / below the next model. No such checkpoint: empty."""
    out = []
    keys = ["family", "size", "next_size", "trajectory", "task"]
    for key, part in tests.group_by(keys, maintain_order=True):
        src = part.filter(pl.col("baseline") == "source").sort("tokens", "ckpt").rows(named=True)
        nxt = part.filter(pl.col("baseline") == "next").sort("tokens", "ckpt").rows(named=True)

        def gain(r):
            return r["significant"] and r["direction"] == "better"

        def at_parity(r):
            return not (r["significant"] and r["direction"] == "worse")

        g, g_kept = _first(src, gain)
        p, p_kept = _first(nxt, at_parity) if nxt else (None, None)
        out.append({**dict(zip(keys, key)), "alpha": alpha, "checkpoints": len(src),
                    "first_gain_ckpt": g and g["ckpt"], "first_gain_tokens": g and g["tokens"],
                    "first_gain_flops": g and g["flops"], "first_gain_sustained": g_kept,
                    "gains": sum(map(gain, src)),
                    "parity_ckpt": p and p["ckpt"], "parity_tokens": p and p["tokens"],
                    "parity_flops": p and p["flops"], "parity_sustained": p_kept,
                    "below_next": sum(not at_parity(r) for r in nxt) if nxt else None})
    schema = {"family": pl.String, "size": pl.String, "next_size": pl.String,
              "trajectory": pl.String, "task": pl.String, "alpha": pl.Float64,
              "checkpoints": pl.Int64, "first_gain_ckpt": pl.String, "first_gain_tokens": pl.Int64,
              "first_gain_flops": pl.Float64, "first_gain_sustained": pl.Boolean, "gains": pl.Int64,
              "parity_ckpt": pl.String, "parity_tokens": pl.Int64, "parity_flops": pl.Float64,
              "parity_sustained": pl.Boolean, "below_next": pl.Int64}
    df = pl.DataFrame(out, schema=schema)
    if df.is_empty():
        return df
    # pooled last within a run and trajectory, tasks alphabetically before it
    return df.sort(["family", size_order(df), "trajectory", pl.col("task") == POOLED, "task"])


def g_rel_intervals(items: Mapping[Key, ModelItems], pairs: Sequence[Sequence[str | None]],
                    n_boot: int, seed: int, level: float = 0.95) -> pl.DataFrame:
    """Bootstrap intervals of G_rel vs the source and vs the next-larger model for every model of
    every run, per task and for the macro mean ("mean": mean accuracy over tasks, divided by the
    baseline's).

    Items are resampled with replacement within each task; a run's models and both its baselines
    take the same resampled items (paired: the item-to-item agreement of two models stays in every
    replicate). Seeded by `seed` and family/size/task. Percentile interval at `level`.
    """
    rows = []
    if n_boot <= 0:
        return pl.DataFrame(schema={"family": pl.String, "size": pl.String, "ckpt": pl.String,
                                    "task": pl.String, **{c: pl.Float64 for c in INTERVAL_COLUMNS}})
    for family, size, nxt in pairs:
        family, size = str(family), str(size)
        nxt = str(nxt) if nxt not in (None, "") else None
        source = items[(family, size, "base")]
        nxt_items = items.get((family, nxt, "base")) if nxt else None
        models = {c: m for (f, s, c), m in items.items() if (f, s) == (family, size)}
        tasks = sorted(source.tasks)
        draws = {t: resample_indices(len(source.tasks[t]["correct"]), n_boot,
                                     stable_seed(seed, family, size, t)) for t in tasks}

        def replicates(model: ModelItems) -> dict[str, np.ndarray]:
            reps = {t: model.correct(t)[draws[t]].mean(axis=1) for t in tasks}
            reps["mean"] = np.mean([reps[t] for t in tasks], axis=0)
            return reps

        for m in [*models.values(), *([nxt_items] if nxt_items else [])]:
            check_paired(m, source)
        src_reps = replicates(source)
        nxt_reps = replicates(nxt_items) if nxt_items else None
        for ckpt, model in models.items():
            reps = replicates(model)
            for task in [*tasks, "mean"]:
                s_lo, s_hi = ratio_interval(reps[task], src_reps[task], level)
                n_lo, n_hi = (ratio_interval(reps[task], nxt_reps[task], level) if nxt_reps
                              else (None, None))
                rows.append({"family": family, "size": size, "ckpt": ckpt, "task": task,
                             "g_rel_source_lo": s_lo, "g_rel_source_hi": s_hi,
                             "g_rel_next_lo": n_lo, "g_rel_next_hi": n_hi})
    return pl.DataFrame(rows, schema={"family": pl.String, "size": pl.String, "ckpt": pl.String,
                                      "task": pl.String, **{c: pl.Float64 for c in INTERVAL_COLUMNS}})
