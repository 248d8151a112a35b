"""Result tables of the study and the Markdown summary for the report.

One module per table (compute, mcqa, rankings, judgments, usage, significance: the paired MCQA
tests and milestones; summary.md in summary), the shared keys, dtypes and readers in common, the
item-level MCQA results in items. Every function is pure over explicit paths and keys, so the tables are
reproducible outside Snakemake. `tokens` and `flops` are joined from the compute table so every
result can be placed on either x axis.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from medadapt.io import atomic_path, write_table
from medadapt.tables.common import read_table, size_key, sorted_sizes, variant_of
from medadapt.tables.compute import compute_table
from medadapt.tables.failure_modes import failure_index, failure_table, response_rows
from medadapt.tables.judgments import judgment_index, judgment_table, prompt_outcome_table
from medadapt.tables.items import items_index, load_items
from medadapt.tables.mcqa import mcqa_index, mcqa_table
from medadapt.tables.significance import mcqa_tests_table, milestones_table
from medadapt.tables.rankings import ranking_table
from medadapt.tables.runs import runs_table
from medadapt.tables.summary import fmt_count, fmt_sci, markdown_table, summary_markdown
from medadapt.tables.usage import usage_table

__all__ = ["compute_table", "mcqa_table", "ranking_table", "judgment_table", "usage_table",
           "prompt_outcome_table", "runs_table", "mcqa_index", "judgment_index", "items_index",
           "load_items", "mcqa_tests_table",
           "milestones_table", "read_table", "summary_markdown", "markdown_table",
           "write_tables", "size_key", "sorted_sizes", "variant_of", "fmt_count", "fmt_sci"]


def _paths(x: str | Sequence[str] | None) -> list[str]:
    """Snakemake hands one file as a str and several as a list: accept both (and nothing)."""
    if x is None:
        return []
    return [str(x)] if isinstance(x, (str, Path)) else [str(p) for p in x]


def _pairs(pairs: Sequence[Sequence[str | None]] | Mapping[str, str | None]) -> list:
    """(family, size, next_size) triples, also from the rule's {"family/size": next_size} mapping."""
    if isinstance(pairs, Mapping):
        return [(*key.split("/", 1), nxt) for key, nxt in pairs.items()]
    return [tuple(p) for p in pairs]


def write_tables(checkpoints: Sequence[str], mcqa: Sequence[str], mcqa_keys: Sequence[str],
                 fits: Sequence[str], pairs: Sequence[Sequence[str | None]] | Mapping[str, str | None],
                 out_compute: str, out_mcqa: str, out_ranking: str, out_summary: str,
                 judgments: Sequence[str] = (), judgment_keys: Sequence[str] = (),
                 out_judgments: str | None = None, corpus_stats: str | None = None,
                 corpus_validation: str | None = None, ledgers: Sequence[str] = (),
                 out_usage: str | None = None, medqa_de_info: str | None = None,
                 mcqa_items: Sequence[str] = (), out_mcqa_tests: str | None = None,
                 out_mcqa_milestones: str | None = None,
                 failure_modes: Sequence[str] = (), failure_mode_keys: Sequence[str] = (),
                 out_failure_modes: str | None = None, out_failure_responses: str | None = None,
                 out_prompt_outcomes: str | None = None, histories: Sequence[str] = (),
                 history_keys: Sequence[str] = (), out_runs: str | None = None, *,
                 mcqa_alpha: float, mcqa_n_boot: int, mcqa_seed: int) -> dict:
    """Stage `tables`: build every result table from the stage outputs, write CSVs + summary.md.

    `mcqa`: MCQA JSON paths; `mcqa_keys`: "family/size/ckpt" of each, in the same order.
    `judgments`: judgment parquets; `judgment_keys`: "family/size/ckpt/baseline" of each.
    `pairs`: (family, size, next_size) per adapted size, or {"family/size": next_size}.
    `ledgers`: the LLM usage ledgers (JSONL; one that does not exist means no usage there) for the
    usage table `out_usage`. `medqa_de_info`: what German MedQA's test set and one-shot pool are.
    `mcqa_items`: the item-level MCQA parquets, in the order of `mcqa_keys`; they give the G_rel
    intervals (`mcqa_n_boot` item resamples, seeded by `mcqa_seed`), the paired tests
    `out_mcqa_tests` and the milestones `out_mcqa_milestones` (Holm at `mcqa_alpha`).
    `failure_modes`: per-response failure-mode parquets; `failure_mode_keys`: "family/size/ckpt"
    of each; aggregated per model into `out_failure_modes` (CSV), all responses in
    `out_failure_responses` (parquet). `out_prompt_outcomes`: every judged prompt's outcome
    (both orders aggregated) per comparison. `histories`: the runs' history.json files, with
    `history_keys` ("family/size" of each): Table 2, `out_runs` (FLOPs, wall time, accelerators).
    """
    compute = compute_table(_paths(checkpoints))
    items = (load_items(items_index(_paths(mcqa_items), _paths(mcqa_keys)))
             if _paths(mcqa_items) else None)
    if (out_mcqa_tests or out_mcqa_milestones) and items is None:
        raise ValueError("tables: MCQA tests or milestones were requested but no MCQA item files given")
    mcqa_df = mcqa_table(mcqa_index(_paths(mcqa), _paths(mcqa_keys)), _pairs(pairs), compute,
                         items=items, n_boot=mcqa_n_boot, seed=mcqa_seed)
    tests = mcqa_tests_table(items, _pairs(pairs), compute, mcqa_alpha) if items else None
    milestones = milestones_table(tests, mcqa_alpha) if tests is not None else None
    ranking = ranking_table(_paths(fits), compute)
    judgment_files = (judgment_index(_paths(judgments), _paths(judgment_keys))
                      if _paths(judgments) or _paths(judgment_keys) else None)
    judged = judgment_table(judgment_files) if judgment_files is not None else None
    if (out_judgments or out_prompt_outcomes) and judged is None:
        raise ValueError("tables: an output for judgments was requested but no judgment files given")
    if out_prompt_outcomes:
        write_table(out_prompt_outcomes, prompt_outcome_table(judgment_files, compute))
    runs = runs_table(_paths(histories), _paths(history_keys)) if _paths(histories) else None
    if out_runs:
        if runs is None:
            raise ValueError("tables: the runs table was requested but no run histories given")
        write_table(out_runs, runs)
    usage, usage_facts = usage_table(_paths(ledgers))
    extra = {name: read_table(p) if p else None for name, p in
             (("corpus_stats", corpus_stats), ("corpus_validation", corpus_validation))}
    medqa = json.loads(Path(medqa_de_info).read_text()) if medqa_de_info else None
    for path, df in ((out_compute, compute), (out_mcqa, mcqa_df), (out_ranking, ranking),
                     (out_judgments, judged), (out_usage, usage), (out_mcqa_tests, tests),
                     (out_mcqa_milestones, milestones)):
        if path:
            write_table(path, df)
    responses = response_rows(failure_index(_paths(failure_modes), _paths(failure_mode_keys)))
    failures = failure_table(responses, compute)
    for path, df in ((out_failure_modes, failures), (out_failure_responses, responses)):
        if path:
            write_table(path, df)
    text = summary_markdown(compute, mcqa_df, ranking, judged, usage=usage, usage_facts=usage_facts,
                            medqa_de=medqa, mcqa_milestones=milestones, runs=runs, **extra)
    with atomic_path(out_summary) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return {"compute_rows": compute.height, "mcqa_rows": mcqa_df.height,
            "ranking_rows": ranking.height, "judgment_rows": judged.height if judged is not None else 0,
            "usage_rows": usage.height, "ledgers": usage_facts["ledgers"],
            "mcqa_test_rows": tests.height if tests is not None else 0}
