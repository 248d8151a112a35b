"""Table 2 of the paper: the cost of every training run (FLOPs, wall time, accelerators,
GPU-hours), from the run histories `train_log` writes (`train/{family}/{size}/history.json`)."""
from __future__ import annotations

from typing import Sequence

import polars as pl

from medadapt.io import read_json
from medadapt.tables.common import PathLike, size_order

RUN_COLUMNS = ["family", "size", "checkpoints", "tokens", "flops", "accelerator", "accelerators",
               "wall_hours", "gpu_hours", "resumed_segments"]
NOT_RECORDED = "not recorded"


def _run_row(path: PathLike) -> dict:
    h = read_json(path, "training history")
    segments = h.get("segments")
    if not isinstance(segments, list) or not segments:
        raise ValueError(f"{path}: field 'segments' must be a non-empty list (one per checkpoint)")
    for i, seg in enumerate(segments):
        for k in ("seconds", "world_size"):
            if not isinstance(seg.get(k), (int, float)):
                raise ValueError(f"{path}: segments[{i}].{k} must be a number")
    names = {seg.get("accelerator") or NOT_RECORDED for seg in segments}
    sizes = {int(seg["world_size"]) for seg in segments}
    seconds = sum(float(seg["seconds"]) for seg in segments)
    return {"checkpoints": len(segments), "tokens": int(h["tokens"]), "flops": float(h["flops"]),
            "accelerator": ", ".join(sorted(names)),
            "accelerators": sizes.pop() if len(sizes) == 1 else None,
            "wall_hours": seconds / 3600,
            "gpu_hours": sum(float(s["seconds"]) * int(s["world_size"]) for s in segments) / 3600,
            "resumed_segments": sum(1 for s in segments
                                    if s.get("resumed_from_step", s.get("first_step"))
                                    != s.get("first_step"))}


def runs_table(histories: Sequence[PathLike], keys: Sequence[str]) -> pl.DataFrame:
    """One row per training run: checkpoints, tokens, FLOPs (6·N·D), the accelerator model (as the
    training segments recorded it; "cpu" for CPU runs, "not recorded" for records older than the
    field), accelerators (processes = devices per segment; null if the segments differ), wall_hours
    (sum of the segments' job times: model loading and saves included, queue waits not) and
    gpu_hours (sum of segment seconds × devices / 3600: device-hours, whatever the vendor),
    resumed_segments (segments that did not start from the state at their first step: resumed
    after an interruption, or recomputed from an older state).

    `keys`: "family/size" of each history, in the same order."""
    if len(histories) != len(keys):
        raise ValueError(f"runs table: {len(histories)} histories but {len(keys)} keys")
    rows = []
    for path, key in zip(histories, keys):
        family, size = str(key).split("/", 1)
        rows.append({**_run_row(path), "family": family, "size": size})
    schema = {"family": pl.String, "size": pl.String, "checkpoints": pl.Int64, "tokens": pl.Int64,
              "flops": pl.Float64, "accelerator": pl.String, "accelerators": pl.Int64,
              "wall_hours": pl.Float64, "gpu_hours": pl.Float64, "resumed_segments": pl.Int64}
    df = pl.DataFrame(rows, schema=schema)
    if df.is_empty():
        return df
    return df.select(RUN_COLUMNS).sort(["family", size_order(df)])
