"""Examples a reviewer can read: for a few prompts per run, the source model's and the last
checkpoint's responses side by side, with the judge's verdict in both presentation orders.

Prompts are chosen without looking at their text: per run, the first prompt (by id) of each
aggregated outcome, win, tie and loss of the last checkpoint against the source, then further
prompts in id order until `per_run` are chosen, so every kind of verdict is shown where it exists.
"""
from __future__ import annotations

from typing import Sequence

import polars as pl

from medadapt.fit import read_judgments
from medadapt.io import atomic_path, read_jsonl, write_table
from medadapt.tables.common import PathLike

PER_RUN = 3  # examples per (family, size)
EXAMPLE_COLUMNS = ["family", "size", "ckpt", "prompt_id", "outcome", "instruction",
                   "source_response", "ckpt_response", "verdict_cand_first",
                   "verdict_base_first", "judge_raw_cand_first", "judge_raw_base_first"]
RESULT_WORD = {1.0: "win", 0.5: "tie", 0.0: "loss"}


def _verdict(game: dict | None) -> str:
    """The judge's verdict of one game in words: what it answered and what that means for the
    checkpoint (A is the response shown first)."""
    if game is None:
        return "not judged"
    if game["winner"] is None:
        return f"no verdict ({game.get('status') or 'invalid'})"
    shown = {"A": "first shown", "B": "second shown", "0": "tie"}[game["winner"]]
    return f"{game['winner']} ({shown}): {RESULT_WORD[game['result']]} for the checkpoint"


def _aggregate(results: list[float]) -> str | None:
    if not results:
        return None
    m = sum(results) / len(results)
    return "win" if m > 0.5 else "tie" if m == 0.5 else "loss"


def choose(outcomes: dict[str, str | None], per_run: int = PER_RUN) -> list[str]:
    """Prompt ids: the first of each outcome (win, tie, loss), then the rest in id order."""
    ids = sorted(outcomes)
    chosen = [next(p for p in ids if outcomes[p] == o) for o in ("win", "tie", "loss")
              if any(outcomes[p] == o for p in ids)][:per_run]
    chosen += [p for p in ids if p not in chosen][:per_run - len(chosen)]
    return sorted(chosen, key=ids.index)


def examples_table(judgments: Sequence[PathLike], candidates: Sequence[PathLike],
                   sources: Sequence[PathLike], keys: Sequence[str],
                   per_run: int = PER_RUN) -> pl.DataFrame:
    """One row per chosen prompt of each run. `judgments`: the last checkpoint against the source
    (judgment parquets); `candidates`/`sources`: the checkpoint's and the source's responses
    (generate JSONL); `keys`: "family/size/ckpt" of each, all four in the same order."""
    if not (len(judgments) == len(candidates) == len(sources) == len(keys)):
        raise ValueError(f"examples: {len(judgments)} judgments, {len(candidates)} candidate and "
                         f"{len(sources)} source response files, {len(keys)} keys: must be equal")
    rows = []
    for jpath, cpath, spath, key in zip(judgments, candidates, sources, keys):
        family, size, ckpt = str(key).split("/")
        games = read_judgments(str(jpath))
        by = {(g["prompt_id"], g["order"]): g for g in games.iter_rows(named=True)}
        cand = {str(r["id"]): r for r in read_jsonl(cpath)}
        src = {str(r["id"]): r for r in read_jsonl(spath)}
        prompts = sorted(set(games["prompt_id"]))
        outcomes = {p: _aggregate([by[(p, o)]["result"] for o in ("cand_first", "base_first")
                                   if (p, o) in by and by[(p, o)]["result"] is not None])
                    for p in prompts}
        for p in choose(outcomes, per_run):
            if p not in cand or p not in src:
                raise ValueError(f"examples: prompt {p!r} of {jpath} has no response in "
                                 f"{cpath if p not in cand else spath}")
            first, second = by.get((p, "cand_first")), by.get((p, "base_first"))
            rows.append({"family": family, "size": size, "ckpt": ckpt, "prompt_id": p,
                         "outcome": outcomes[p], "instruction": cand[p].get("instruction"),
                         "source_response": src[p]["response"], "ckpt_response": cand[p]["response"],
                         "verdict_cand_first": _verdict(first), "verdict_base_first": _verdict(second),
                         "judge_raw_cand_first": first and first.get("raw"),
                         "judge_raw_base_first": second and second.get("raw")})
    return pl.DataFrame(rows, schema={c: pl.String for c in EXAMPLE_COLUMNS})


def _cell(text: str | None) -> str:
    return (text or "").strip().replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def examples_markdown(df: pl.DataFrame) -> str:
    """The examples as Markdown: per prompt the instruction, both responses side by side (a
    two-column table) and the judge's verdict in both orders."""
    out = ["# Judge examples: source vs last checkpoint", "",
           "Per run, a few prompts (the first win, tie and loss of the last checkpoint against its "
           "source, by prompt id). Each prompt is judged twice: with the checkpoint's response "
           "shown first (A) and with the source's shown first.", ""]
    for r in df.iter_rows(named=True):
        out += [f"## {r['family']} {r['size']}, {r['ckpt']}: prompt {r['prompt_id']} "
                f"({r['outcome'] or 'no verdict'})", "",
                f"**Instruction:** {_cell(r['instruction'])}", "",
                f"| source ({r['size']} base) | {r['ckpt']} (CPT + SLERP) |", "|---|---|",
                f"| {_cell(r['source_response'])} | {_cell(r['ckpt_response'])} |", "",
                f"- checkpoint shown first: {r['verdict_cand_first']}",
                f"- source shown first: {r['verdict_base_first']}", ""]
    if df.is_empty():
        out.append("No judged prompts.")
    return "\n".join(out) + "\n"


def write_examples(judgments: Sequence[str], candidates: Sequence[str], sources: Sequence[str],
                   example_keys: Sequence[str], out_csv: str, out_md: str) -> dict:
    """Stage `judge_examples`: the examples table (CSV) and its Markdown for the report;
    `example_keys`: "family/size/ckpt" of each judgment (see `examples_table`)."""
    def paths(x):
        return [str(x)] if isinstance(x, str) else [str(p) for p in x]
    df = examples_table(paths(judgments), paths(candidates), paths(sources), paths(example_keys))
    write_table(out_csv, df)
    with atomic_path(out_md) as tmp:
        tmp.write_text(examples_markdown(df), encoding="utf-8")
    return {"examples": df.height}
