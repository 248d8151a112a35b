"""Result tables and the summary, on synthetic stage outputs (2 families x 2 sizes x 3 checkpoints).

The synthetic writers below follow the file contracts in docs/ARCHITECTURE.md; test_figures.py
reuses them.
"""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from medadapt.fit import FIT_COLUMNS
from medadapt.tables import (compute_table, items_index, judgment_index, judgment_table,
                             load_items, mcqa_index, mcqa_table, ranking_table, read_table, size_key,
                             summary_markdown, usage_table, write_tables)

FAMILIES = {"qwen2.5": ("0.5b", "1.5b", "3b"), "qwen3": ("0.6b", "1.7b", "4b")}  # 2 adapted + next
CKPTS = ("c01", "c02", "c03")
TOKENS = (1_000_000, 4_000_000, 16_000_000)
TASKS = ("anatomy", "clinical_knowledge")
# Items per task: every accuracy below is a whole number of 2000 items (base 0.05 steps × 1.0k).
N_ITEMS = 2000
PARAMS = {"0.5b": 0.36e9, "1.5b": 1.3e9, "0.6b": 0.44e9, "1.7b": 1.4e9}
# judge: 5 answers (4 valid, 1 invalid, one of them through the Batch API), 2 errors (a 429 and a
# timeout), 3 cache hits; annotate: 2 answers without prices
JUDGE = {"kind": "answer", "stage": "judge", "model": "gpt-4.1-mini"}
JUDGE_LEDGER = ([JUDGE] * 3 + [{**JUDGE, "batch": "batch_1", "cost_usd": 0.0005}]
                + [{**JUDGE, "valid": False, "completion_tokens": 32}]
                + [{**JUDGE, "kind": "error", "status": 429, "valid": None, "prompt_tokens": None,
                    "completion_tokens": None, "cost_usd": None},
                   {**JUDGE, "kind": "error", "status": None, "valid": None, "prompt_tokens": None,
                    "completion_tokens": None, "cost_usd": None}]
                + [{**JUDGE, "kind": "cache_hit", "cost_usd": 0.001}] * 3)
ANNOTATE_LEDGER = [{"kind": "answer", "stage": "annotate", "model": "tiny-annotator", "cost_usd": None,
                    "prompt_tokens": 50, "completion_tokens": 1}] * 2


def base_acc(size_rank: int, task: int) -> float:
    return 0.30 + 0.10 * size_rank + 0.05 * task


def accuracy(size_rank: int, ckpt: str, task: int) -> float:
    """Merged cNN gains 5 % per checkpoint over the source, raw CPT 3 %."""
    if ckpt == "base":
        return base_acc(size_rank, task)
    i = int(ckpt[-2:])
    return base_acc(size_rank, task) * (1 + (0.03 if ckpt.startswith("raw") else 0.05) * i)


def make_inputs(root: Path) -> dict:
    """Write checkpoints.csv, MCQA JSONs, fit CSVs and judgment parquets under `root`, with the keys
    the workflow passes beside them (mcqa_keys, judgment_keys)."""
    out = {"checkpoints": [], "mcqa": [], "mcqa_keys": [], "mcqa_items": [], "fits": [],
           "judgments": [], "judgment_keys": [], "pairs": []}
    for family, sizes in FAMILIES.items():
        for rank, size in enumerate(sizes):
            adapted = rank < 2
            if adapted:
                out["pairs"].append([family, size, sizes[rank + 1]])
                path = root / "train" / family / size / "checkpoints.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                pl.DataFrame({"family": family, "size": size, "ckpt": list(CKPTS), "step": [10, 40, 160],
                              "fraction": [0.0625, 0.25, 1.0], "tokens": list(TOKENS),
                              "flops": [6 * PARAMS[size] * t for t in TOKENS],
                              "train_loss": [3.0, 2.5, 2.2]}).write_csv(path)
                out["checkpoints"].append(str(path))
            ckpts = ["base"] + ([*CKPTS, *(f"raw-{c}" for c in CKPTS)] if adapted else [])
            for ckpt in ckpts:
                path = root / "mcqa" / family / size / f"{ckpt}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                tasks = {t: {"acc": accuracy(rank, ckpt, i), "acc_stderr": 0.01, "n": N_ITEMS}
                         for i, t in enumerate(TASKS)}
                path.write_text(json.dumps({"model": "x", "family": family, "size": size, "ckpt": ckpt,
                                            "num_fewshot": 1, "tasks": tasks, "mean_acc": 0.0}))
                out["mcqa"].append(str(path))
                out["mcqa_items"].append(write_items(path.with_suffix(".items.parquet"), tasks))
                out["mcqa_keys"].append(f"{family}/{size}/{ckpt}")
            if adapted:
                for baseline in ("source", "next"):
                    out["fits"].append(_fit(root, family, size, baseline, sizes[rank + 1]))
                    out["judgments"] += _judgments(root, family, size, baseline)
                    out["judgment_keys"] += [f"{family}/{size}/{c}/{baseline}" for c in CKPTS]
    out["ledgers"] = [write_ledger(root / "judge-ledger.jsonl", JUDGE_LEDGER),
                      write_ledger(root / "annotate-ledger.jsonl", ANNOTATE_LEDGER),
                      str(root / "no-such-ledger.jsonl")]
    return out


def write_items(path: Path, tasks: dict) -> str:
    """The item file of an MCQA JSON: a model with accuracy a gets the first a·n items right (so a
    more accurate model is right wherever a less accurate one is)."""
    rows = []
    for t, res in tasks.items():
        k = round(res["acc"] * res["n"])
        assert abs(k - res["acc"] * res["n"]) < 1e-6, "accuracy is not a whole number of items"
        rows += [{"task": t, "doc_id": i, "item_id": str(i), "doc_hash": f"{t}-{i}", "target": 0,
                  "chosen": 0 if i < k else 1, "correct": i < k, "loglik": [-1.0, -2.0]}
                 for i in range(res["n"])]
    pl.DataFrame(rows).write_parquet(path)
    return str(path)


def _fit(root: Path, family: str, size: str, baseline: str, nxt: str) -> str:
    """A fit CSV (medadapt.fit.FIT_COLUMNS). Against the source its base row is the unfitted 0.5
    point; against the next size the source is a fitted player."""
    start = 0.5 if baseline == "source" else 0.3
    scores = [start, start + 0.1, start + 0.15, start + 0.2]
    n = 20
    wins = [round(s * n * 0.8) for s in scores]
    losses = [round((1 - s) * n * 0.8) for s in scores]
    ties = [n - w - l for w, l in zip(wins, losses)]
    fitted = [baseline != "source", True, True, True]
    rows = []
    for k, ckpt in enumerate(["base", *CKPTS]):
        on = fitted[k]
        rows.append({"ckpt": ckpt, "fitted": on, "games": n + 2 if on else 0, "valid": n + 1 if on else 0,
                     "invalid": 1 if on else 0, "prompts": n // 2 + 1 if on else 0,
                     "prompts_dropped": 1 if on else 0, "wins": wins[k] if on else 0,
                     "ties": ties[k] if on else 0, "losses": losses[k] if on else 0,
                     "score": scores[k], "score_lo": scores[k] - 0.05 if on else None,
                     "score_hi": scores[k] + 0.05 if on else None,
                     "expected_score": scores[k] - 0.01 if on else 0.5,
                     "expected_score_lo": scores[k] - 0.06 if on else None,
                     "expected_score_hi": scores[k] + 0.04 if on else None,
                     "strength": scores[k] / (1 - scores[k]), "nu": 0.3 if on else None,
                     "gamma": 1.2 if on else None, "position_consistency": 0.7 if on else None,
                     "degenerate": False, "status": "converged" if on else "not fitted (the baseline itself)"})
    path = root / "fit" / family / f"{size}_vs_{baseline}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    key = {"family": family, "size": size, "baseline": baseline,
           "baseline_model": f"{family}/{size if baseline == 'source' else nxt}/base"}
    pl.DataFrame([{**key, **r} for r in rows], infer_schema_length=None).select(FIT_COLUMNS).write_csv(path)
    return str(path)


def _judgments(root: Path, family: str, size: str, baseline: str) -> list[str]:
    paths = []
    for ckpt in CKPTS:
        # prompt 0: win in both orders; prompt 1: A wins both times (position bias: disagreement);
        # prompt 2: tie + no valid verdict (dropped from the fit).
        rows = [("p0", "cand_first", "A", "win"), ("p0", "base_first", "B", "win"),
                ("p1", "cand_first", "A", "win"), ("p1", "base_first", "A", "loss"),
                ("p2", "cand_first", "0", "tie"), ("p2", "base_first", None, None)]
        path = root / "judge" / family / size / f"{ckpt}_vs_{baseline}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rows, schema=["prompt_id", "order", "winner", "outcome"], orient="row").with_columns(
            judge_model=pl.lit("judge"), prompt_tokens=pl.lit(100), completion_tokens=pl.lit(5),
            cache_hit=pl.lit(False), key=pl.lit("k")).write_parquet(path)
        paths.append(str(path))
    return paths


def write_ledger(path: Path, records: list[dict]) -> str:
    """A ledger as the LLM client appends it (one JSON object per line)."""
    base = {"time": "2026-01-01T00:00:00Z", "job": "j", "endpoint": "http://x/v1", "key": "k",
            "attempt": 1, "status": 200, "valid": True, "prompt_tokens": 100, "completion_tokens": 5,
            "cost_usd": 0.001, "batch": None}
    path.write_text("".join(json.dumps({**base, **r}) + "\n" for r in records))
    return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    return make_inputs(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def tables(inputs) -> dict[str, pl.DataFrame]:
    compute = compute_table(inputs["checkpoints"])
    return {"compute": compute,
            "mcqa": mcqa_table(mcqa_index(inputs["mcqa"], inputs["mcqa_keys"]), inputs["pairs"], compute),
            "ranking": ranking_table(inputs["fits"], compute),
            "judgments": judgment_table(judgment_index(inputs["judgments"], inputs["judgment_keys"]))}


def test_compute_table_adds_base_row_at_origin(tables):
    c = tables["compute"]
    assert c.height == 2 * 2 * 4
    base = c.filter(pl.col("ckpt") == "base")
    assert sorted(base.select("family", "size").rows()) == sorted(
        (f, s) for f, sizes in FAMILIES.items() for s in sizes[:2])
    assert base["tokens"].to_list() == [0] * 4 and base["flops"].to_list() == [0.0] * 4
    assert c["flops"].dtype == pl.Float64
    # sorted: base first, then by tokens, sizes in parameter order
    first = c.filter(pl.col("family") == "qwen2.5")
    assert first["size"].to_list()[:4] == ["0.5b"] * 4 and first["ckpt"].to_list()[:4] == ["base", *CKPTS]


def test_mcqa_g_rel_matches_hand_numbers(tables):
    m = tables["mcqa"]
    row = m.filter((pl.col("family") == "qwen2.5") & (pl.col("size") == "0.5b")
                   & (pl.col("ckpt") == "c03") & (pl.col("task") == "anatomy")).row(0, named=True)
    # source 0.5b anatomy 0.30, c03 = 0.30 * 1.15 = 0.345; next 1.5b base anatomy 0.40
    assert row["acc"] == pytest.approx(0.345)
    assert row["g_rel_source"] == pytest.approx(1.15)
    assert row["g_rel_next"] == pytest.approx(0.345 / 0.40)
    assert (row["variant"], row["tokens"], row["next_size"]) == ("merged", 16_000_000, "1.5b")
    mean = m.filter((pl.col("family") == "qwen2.5") & (pl.col("size") == "0.5b")
                    & (pl.col("ckpt") == "c03") & (pl.col("task") == "mean")).row(0, named=True)
    # mean of (0.345, 0.35*1.15) over mean of next base (0.40, 0.45)
    assert mean["acc"] == pytest.approx((0.345 + 0.4025) / 2)
    assert mean["g_rel_next"] == pytest.approx((0.345 + 0.4025) / (0.40 + 0.45))
    assert mean["acc_stderr"] == pytest.approx((2 * 0.01 ** 2) ** 0.5 / 2)
    assert mean["n"] == 2 * N_ITEMS


def test_mcqa_raw_and_base_rows(tables):
    m = tables["mcqa"]
    raw = m.filter((pl.col("ckpt") == "raw-c02") & (pl.col("task") == "mean")
                   & (pl.col("size") == "1.7b")).row(0, named=True)
    assert raw["variant"] == "raw" and raw["tokens"] == 4_000_000
    assert raw["g_rel_source"] == pytest.approx(1.06)
    base = m.filter((pl.col("ckpt") == "base") & (pl.col("size") == "1.7b") & (pl.col("task") == "mean"))
    assert base["g_rel_source"].to_list() == [pytest.approx(1.0)] and base["tokens"].to_list() == [0]
    # baseline-only model (4b): a base row at the origin, no next size
    top = m.filter(pl.col("size") == "4b")
    assert set(top["variant"]) == {"base"} and top["next_size"].null_count() == top.height
    assert set(m["task"]) == {*TASKS, "mean"}


def test_ranking_table_joins_compute(tables):
    r = tables["ranking"]
    assert r.height == 2 * 2 * 2 * 4
    row = r.filter((pl.col("size") == "1.5b") & (pl.col("baseline") == "next")
                   & (pl.col("ckpt") == "c02")).row(0, named=True)
    assert row["tokens"] == 4_000_000 and row["flops"] == pytest.approx(6 * 1.3e9 * 4e6)
    assert row["score"] == pytest.approx(0.45) and row["baseline_model"] == "qwen2.5/3b/base"
    assert row["expected_score"] == pytest.approx(0.44) and row["gamma"] == pytest.approx(1.2)
    assert (row["games"], row["valid"], row["invalid"], row["prompts"], row["prompts_dropped"]) == \
        (22, 21, 1, 11, 1)
    assert r.filter(pl.col("ckpt") == "base")["tokens"].to_list() == [0] * 8
    # the source's own point: 0.5, not fitted, no interval, no games
    own = r.filter((pl.col("ckpt") == "base") & (pl.col("baseline") == "source"))
    assert own["score"].to_list() == [0.5] * 4 and not own["fitted"].any()
    assert own["score_lo"].null_count() == 4 and own["games"].to_list() == [0] * 4
    assert r.filter((pl.col("ckpt") == "base") & (pl.col("baseline") == "next"))["fitted"].all()
    assert r["status"].dtype == pl.String and r["degenerate"].dtype == pl.Boolean


def test_judgment_table_counts_and_bias(tables):
    j = tables["judgments"]
    assert j.height == 2 * 2 * 2 * 3
    row = j.row(0, named=True)
    assert (row["wins"], row["ties"], row["losses"], row["invalid"], row["valid"]) == (3, 1, 1, 1, 5)
    assert (row["prompts"], row["games"], row["prompts_dropped"]) == (3, 6, 1)
    assert row["order_agreement"] == pytest.approx(0.5)  # p0 agrees, p1 does not, p2 has one verdict
    assert row["first_shown_win_rate"] == pytest.approx(3 / 4)
    assert row["prompt_tokens"] == 600 and row["cache_hits"] == 0


def test_usage_table_from_hand_made_ledgers(inputs):
    usage, facts = usage_table(inputs["ledgers"])
    rows = {(r["stage"], r["model"]): r for r in usage.iter_rows(named=True)}
    judge = rows[("judge", "gpt-4.1-mini")]
    assert (judge["requests"], judge["answers"], judge["valid"], judge["invalid"], judge["errors"],
            judge["cache_hits"], judge["batch_answers"]) == (7, 5, 4, 1, 2, 3, 1)
    assert (judge["prompt_tokens"], judge["completion_tokens"]) == (500, 4 * 5 + 32)  # no cache hits
    assert judge["cost_usd"] == pytest.approx(4 * 0.001 + 0.0005)
    annotate = rows[("annotate", "tiny-annotator")]
    assert (annotate["requests"], annotate["answers"], annotate["prompt_tokens"]) == (2, 2, 100)
    assert annotate["cost_usd"] is None  # no prices: no estimate
    total = rows[("all", "all")]
    assert (total["requests"], total["answers"], total["cache_hits"]) == (9, 7, 3)
    assert total["cost_usd"] == pytest.approx(judge["cost_usd"])
    assert usage["stage"].to_list()[-1] == "all"
    assert facts["missing"] == [inputs["ledgers"][2]] and facts["unreadable_lines"] == 0


def test_usage_without_ledgers_and_with_a_torn_line(tmp_path):
    usage, facts = usage_table([str(tmp_path / "none.jsonl")])
    assert usage.is_empty() and usage.columns[:3] == ["stage", "model", "requests"]
    torn = tmp_path / "ledger.jsonl"
    write_ledger(torn, [JUDGE, JUDGE])
    torn.write_text(torn.read_text() + '{"kind": "answer", "sta')  # a run killed while writing
    usage, facts = usage_table([str(torn)])
    assert usage.filter(pl.col("stage") == "all")["answers"].to_list() == [2]
    assert facts["unreadable_lines"] == 1
    bad = write_ledger(tmp_path / "bad.jsonl", [{**JUDGE, "kind": "paid"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: a ledger record needs kind in .*got 'paid'"):
        usage_table([bad])


def test_summary_markdown_key_numbers(tables, inputs):
    usage, facts = usage_table(inputs["ledgers"])
    medqa = {"test_items": 1273, "member": "langs_processed/German-full.json", "corpus": "MedQA",
             "fewshot_pool_items": 2, "fewshot_pool_ids": ["a", "b"]}
    text = summary_markdown(tables["compute"], tables["mcqa"], tables["ranking"], tables["judgments"],
                            usage=usage, usage_facts=facts, medqa_de=medqa)
    assert "## qwen2.5" in text and "## qwen3" in text
    line = next(x for x in text.splitlines() if x.startswith("| 0.5b"))
    assert "16M" in line and "1.150" in line                     # tokens, final G_rel vs source
    assert "0.700 [0.650, 0.750]" in line                          # final score vs source
    assert "0.300 → 0.500 [0.450, 0.550]" in line                  # score vs next: source -> final
    assert "0.690 [0.640, 0.740]" in line                          # final expected score vs source
    assert "The figures plot this score" in text and "expected score (W + T/2)/n" in text
    assert "first-shown response wins 0.750" in text
    assert "games judged: 144; without a valid verdict: 24; prompts dropped from the fits: 24 of 72" in text
    fits = [x for x in text.splitlines() if x.startswith("| qwen3 | 1.7b | source")]
    assert fits == ["| qwen3 | 1.7b | source | converged | 0.3 | 1.2 | 66 | 3 | 3 | 0.7 |  |"]
    assert "| judge | gpt-4.1-mini | 7 | 5 | 4 | 1 | 2 | 3 | 1 | 500 | 52 | 0.0045 |" in text
    assert "the pool took 2 test item(s) (a, b)" in text and "1273 items" in text
    assert "No LLM requests were recorded" in summary_markdown(
        tables["compute"], tables["mcqa"], usage=usage_table([])[0])


def test_write_tables_round_trip(inputs, tables, tmp_path):
    stats = tmp_path / "corpus_stats.csv"
    pl.DataFrame({"docs": [7_300_000], "tokens": [9_500_000_000]}).write_csv(stats)
    out = {k: str(tmp_path / f"{k}.csv") for k in ("compute", "mcqa", "ranking", "judgments")}
    # The keys come from the workflow, not from the layout: the same files under flat names
    # (and MCQA JSONs without family/size/ckpt fields) give the same tables.
    flat = tmp_path / "flat"
    flat.mkdir()
    mcqa, judgments, items = [], [], []
    for k, p in enumerate(inputs["mcqa"]):
        data = json.loads(Path(p).read_text())
        (flat / f"{k}.json").write_text(json.dumps({"tasks": data["tasks"]}))
        mcqa.append(str(flat / f"{k}.json"))
        (flat / f"{k}.parquet").write_bytes(Path(inputs["mcqa_items"][k]).read_bytes())
        items.append(str(flat / f"{k}.parquet"))
    for k, p in enumerate(inputs["judgments"]):
        (flat / f"j{k}.parquet").write_bytes(Path(p).read_bytes())
        judgments.append(str(flat / f"j{k}.parquet"))
    pairs = {f"{f}/{s}": n for f, s, n in inputs["pairs"]}  # the rule's form
    info = tmp_path / "medqa_de.json"
    info.write_text(json.dumps({"test_items": 1273, "fewshot_pool_items": 2, "fewshot_pool_ids": ["a", "b"]}))
    res = write_tables(inputs["checkpoints"], mcqa, inputs["mcqa_keys"], inputs["fits"], pairs,
                       out["compute"], out["mcqa"], out["ranking"], str(tmp_path / "summary.md"),
                       judgments=judgments, judgment_keys=inputs["judgment_keys"],
                       out_judgments=out["judgments"], corpus_stats=str(stats),
                       ledgers=inputs["ledgers"], out_usage=str(tmp_path / "usage.csv"),
                       medqa_de_info=str(info), mcqa_items=items,
                       out_mcqa_tests=str(tmp_path / "tests.csv"),
                       out_mcqa_milestones=str(tmp_path / "milestones.csv"), mcqa_alpha=0.05,
                       mcqa_n_boot=50, mcqa_seed=5)
    # tests: 4 runs × 2 trajectories × (3 checkpoints vs source + 4 points vs next) × (2 tasks + pooled)
    assert res == {"compute_rows": 16, "mcqa_rows": 90, "ranking_rows": 32, "judgment_rows": 24,
                   "usage_rows": 3, "ledgers": inputs["ledgers"][:2], "mcqa_test_rows": 168}
    assert pl.read_csv(tmp_path / "usage.csv").equals(usage_table(inputs["ledgers"])[0])
    assert "the pool took 2 test item(s)" in (tmp_path / "summary.md").read_text()
    back = read_table(out["mcqa"])
    assert back["size"].dtype == pl.String and back["flops"].dtype == pl.Float64
    with_ci = mcqa_table(mcqa_index(inputs["mcqa"], inputs["mcqa_keys"]), inputs["pairs"],
                         tables["compute"], items=load_items(items_index(items, inputs["mcqa_keys"])),
                         n_boot=50, seed=5)
    assert back.equals(with_ci) and back["g_rel_source_lo"].drop_nulls().len() > 0
    assert back.drop("g_rel_source_lo", "g_rel_source_hi", "g_rel_next_lo", "g_rel_next_hi").equals(
        tables["mcqa"].drop("g_rel_source_lo", "g_rel_source_hi", "g_rel_next_lo", "g_rel_next_hi"))
    tests = read_table(tmp_path / "tests.csv")
    assert tests["significant"].dtype == pl.Boolean and tests.height == 168
    # 0.5b anatomy: c01 = 0.315 of 2000 items vs the source's 0.30: 30 items, all one way
    c01 = tests.filter((pl.col("size") == "0.5b") & (pl.col("ckpt") == "c01")
                       & (pl.col("family") == "qwen2.5") & (pl.col("baseline") == "source") & (pl.col("task") == "anatomy")
                       & (pl.col("trajectory") == "merged")).row(0, named=True)
    assert (c01["ckpt_only"], c01["baseline_only"], c01["p_value"]) == (30, 0, pytest.approx(2 / 2 ** 30))
    milestones = read_table(tmp_path / "milestones.csv")
    assert milestones.height == 4 * 2 * 3 and set(milestones["first_gain_ckpt"]) == {"c01", "raw-c01"}
    summary = (tmp_path / "summary.md").read_text()
    assert "## MCQA significance" in summary and "first significant MCQA gain vs source" in summary
    assert read_table(out["ranking"]).equals(tables["ranking"])
    assert read_table(out["compute"]).equals(tables["compute"])
    assert pl.read_csv(out["judgments"]).equals(tables["judgments"])
    assert "| 7300000 | 9500000000 |" in (tmp_path / "summary.md").read_text()


def test_keys_must_match_the_files(inputs, tmp_path):
    args = dict(checkpoints=inputs["checkpoints"], fits=inputs["fits"], pairs=inputs["pairs"],
                out_compute=str(tmp_path / "c.csv"), out_mcqa=str(tmp_path / "m.csv"),
                out_ranking=str(tmp_path / "r.csv"), out_summary=str(tmp_path / "s.md"),
                mcqa_alpha=0.05, mcqa_n_boot=0, mcqa_seed=0)
    mcqa, keys = inputs["mcqa"], inputs["mcqa_keys"]
    with pytest.raises(ValueError, match=r"MCQA table: 30 file\(s\) but 29 key\(s\)"):
        write_tables(mcqa=mcqa, mcqa_keys=keys[:-1], **args)
    with pytest.raises(ValueError, match=r"key 'qwen3/0.6b' for .*: expected \"family/size/ckpt\""):
        write_tables(mcqa=mcqa[:1], mcqa_keys=["qwen3/0.6b"], **args)
    with pytest.raises(ValueError, match="key 'qwen3/0.6b/base' given twice"):
        write_tables(mcqa=mcqa[:2], mcqa_keys=["qwen3/0.6b/base"] * 2, **args)
    with pytest.raises(ValueError, match=r"judgment table: 24 file\(s\) but 0 key\(s\)"):
        write_tables(mcqa=mcqa, mcqa_keys=keys, judgments=inputs["judgments"], **args)
    with pytest.raises(ValueError, match=r"expected \"family/size/ckpt/baseline\""):
        judgment_index(inputs["judgments"][:1], ["qwen3/0.6b/c01"])
    with pytest.raises(ValueError, match="output for judgments was requested"):
        write_tables(mcqa=mcqa, mcqa_keys=keys, out_judgments=str(tmp_path / "j.csv"), **args)
    with pytest.raises(ValueError, match=r"MCQA items: 29 file\(s\) but 30 key\(s\)"):
        write_tables(mcqa=mcqa, mcqa_keys=keys, mcqa_items=inputs["mcqa_items"][:-1], **args)
    with pytest.raises(ValueError, match="MCQA tests or milestones were requested but no MCQA item files"):
        write_tables(mcqa=mcqa, mcqa_keys=keys, out_mcqa_tests=str(tmp_path / "t.csv"), **args)


def test_size_key_orders_parameter_counts_then_words():
    assert sorted(["14b", "0.5b", "7b", "1.5b", "500m"], key=size_key) == ["0.5b", "500m", "1.5b", "7b", "14b"]
    assert sorted(["l", "s", "xl", "m"], key=size_key) == ["s", "m", "l", "xl"]     # the demo's sizes


def test_errors_name_the_problem(inputs, tmp_path):
    with pytest.raises(ValueError, match="no input files"):
        compute_table([])
    bad = tmp_path / "checkpoints.csv"
    pl.DataFrame({"family": ["f"], "size": ["1b"]}).write_csv(bad)
    with pytest.raises(ValueError, match=r"checkpoints\.csv: missing column\(s\).*ckpt"):
        compute_table([str(bad)])
    compute = compute_table(inputs["checkpoints"])
    index = mcqa_index(inputs["mcqa"], inputs["mcqa_keys"])
    no_source = {k: v for k, v in index.items() if k != ("qwen3", "0.6b", "base")}
    with pytest.raises(ValueError, match=r"source model \(qwen3, 0.6b, base\)"):
        mcqa_table(no_source, inputs["pairs"], compute)
    no_next = {k: v for k, v in index.items() if k != ("qwen3", "4b", "base")}
    with pytest.raises(ValueError, match="names next size '4b'"):
        mcqa_table(no_next, inputs["pairs"], compute)
    with pytest.raises(ValueError, match="no compute row"):
        mcqa_table(index, inputs["pairs"], compute.filter(pl.col("ckpt") != "c02"))
    empty_json = tmp_path / "x.json"
    empty_json.write_text(json.dumps({"tasks": {}}))
    with pytest.raises(ValueError, match="'tasks' must be a non-empty"):
        mcqa_table({("f", "1b", "base"): str(empty_json)}, [], compute)
    with pytest.raises(ValueError, match=r"x\.parquet: cannot read judgment parquet"):
        judgment_table(judgment_index([str(tmp_path / "x.parquet")], ["f/1b/c01/source"]))


def test_g_rel_undefined_for_zero_accuracy_baseline(tmp_path):
    """A random demo model can score 0: its ratio is null (not inf/NaN) and nothing crashes."""
    ckpts = tmp_path / "checkpoints.csv"
    pl.DataFrame({"family": "f", "size": "s", "ckpt": ["c01"], "step": [1], "fraction": [1.0],
                  "tokens": [100], "flops": [1e6], "train_loss": [2.0]}).write_csv(ckpts)
    index = {}
    for size, ckpt, acc in (("s", "base", 0.0), ("s", "c01", 0.25), ("m", "base", 0.5)):
        path = tmp_path / f"{size}-{ckpt}.json"
        path.write_text(json.dumps({"tasks": {"t": {"acc": acc, "acc_stderr": 0.1, "n": 4}}}))
        index[("f", size, ckpt)] = str(path)
    m = mcqa_table(index, [("f", "s", "m")], compute_table([str(ckpts)]))
    row = m.filter((pl.col("ckpt") == "c01") & (pl.col("task") == "t")).row(0, named=True)
    assert row["g_rel_source"] is None and row["g_rel_next"] == pytest.approx(0.5)
