"""Result tables and the summary, on synthetic stage outputs (2 families x 2 sizes x 3 checkpoints).

The synthetic writers below follow the file contracts in docs/ARCHITECTURE.md; test_figures.py
reuses them.
"""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from medadapt.tables import (compute_table, judgment_index, judgment_table, mcqa_index, mcqa_table,
                             ranking_table, read_table, size_key, summary_markdown, write_tables)

FAMILIES = {"qwen2.5": ("0.5b", "1.5b", "3b"), "qwen3": ("0.6b", "1.7b", "4b")}  # 2 adapted + next
CKPTS = ("c01", "c02", "c03")
TOKENS = (1_000_000, 4_000_000, 16_000_000)
TASKS = ("anatomy", "clinical_knowledge")
PARAMS = {"0.5b": 0.36e9, "1.5b": 1.3e9, "0.6b": 0.44e9, "1.7b": 1.4e9}


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
    out = {"checkpoints": [], "mcqa": [], "mcqa_keys": [], "fits": [], "judgments": [],
           "judgment_keys": [], "pairs": []}
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
                tasks = {t: {"acc": accuracy(rank, ckpt, i), "acc_stderr": 0.01, "n": 100}
                         for i, t in enumerate(TASKS)}
                path.write_text(json.dumps({"model": "x", "family": family, "size": size, "ckpt": ckpt,
                                            "num_fewshot": 1, "tasks": tasks, "mean_acc": 0.0}))
                out["mcqa"].append(str(path))
                out["mcqa_keys"].append(f"{family}/{size}/{ckpt}")
            if adapted:
                for baseline in ("source", "next"):
                    out["fits"].append(_fit(root, family, size, baseline, sizes[rank + 1]))
                    out["judgments"] += _judgments(root, family, size, baseline)
                    out["judgment_keys"] += [f"{family}/{size}/{c}/{baseline}" for c in CKPTS]
    return out


def _fit(root: Path, family: str, size: str, baseline: str, nxt: str) -> str:
    start = 0.5 if baseline == "source" else 0.3
    scores = [start, start + 0.1, start + 0.15, start + 0.2]
    n = 20
    wins = [round(s * n * 0.8) for s in scores]
    losses = [round((1 - s) * n * 0.8) for s in scores]
    path = root / "fit" / family / f"{size}_vs_{baseline}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"family": family, "size": size, "baseline": baseline,
                  "baseline_model": f"{family}/{size if baseline == 'source' else nxt}/base",
                  "ckpt": ["base", *CKPTS], "wins": wins, "ties": [n - w - l for w, l in zip(wins, losses)],
                  "losses": losses, "strength": [s / (1 - s) for s in scores], "score": scores,
                  "score_lo": [s - 0.05 for s in scores], "score_hi": [s + 0.05 for s in scores],
                  "nu": 0.3}).write_csv(path)
    return str(path)


def _judgments(root: Path, family: str, size: str, baseline: str) -> list[str]:
    paths = []
    for ckpt in CKPTS:
        # prompt 0: win in both orders; prompt 1: A wins both times (position bias: disagreement);
        # prompt 2: tie + unparsable verdict.
        rows = [("p0", "cand_first", "A", "win"), ("p0", "base_first", "B", "win"),
                ("p1", "cand_first", "A", "win"), ("p1", "base_first", "A", "loss"),
                ("p2", "cand_first", "0", "tie"), ("p2", "base_first", None, None)]
        path = root / "judge" / family / size / f"{ckpt}_vs_{baseline}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rows, schema=["prompt_id", "order", "winner_raw", "outcome"], orient="row").with_columns(
            judge_model=pl.lit("judge"), prompt_tokens=pl.lit(100), completion_tokens=pl.lit(5),
            cache_hit=pl.lit(False), key=pl.lit("k")).write_parquet(path)
        paths.append(str(path))
    return paths


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
    assert mean["n"] == 200


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
    assert r.filter(pl.col("ckpt") == "base")["tokens"].to_list() == [0] * 8


def test_judgment_table_counts_and_bias(tables):
    j = tables["judgments"]
    assert j.height == 2 * 2 * 2 * 3
    row = j.row(0, named=True)
    assert (row["wins"], row["ties"], row["losses"], row["invalid"]) == (3, 1, 1, 1)
    assert row["n_prompts"] == 3 and row["n_judgments"] == 6
    assert row["order_agreement"] == pytest.approx(0.5)  # p0 agrees, p1 does not, p2 has one verdict
    assert row["first_shown_win_rate"] == pytest.approx(3 / 4)
    assert row["prompt_tokens"] == 600 and row["cache_hits"] == 0


def test_summary_markdown_key_numbers(tables):
    text = summary_markdown(tables["compute"], tables["mcqa"], tables["ranking"], tables["judgments"])
    assert "## qwen2.5" in text and "## qwen3" in text
    line = next(x for x in text.splitlines() if x.startswith("| 0.5b"))
    assert "16M" in line and "1.150" in line                     # tokens, final G_rel vs source
    assert "0.700 [0.650, 0.750]" in line                          # final score vs source
    assert "0.300 → 0.500 [0.450, 0.550]" in line                  # score vs next: source -> final
    assert "first-shown response wins 0.750" in text


def test_write_tables_round_trip(inputs, tables, tmp_path):
    stats = tmp_path / "corpus_stats.csv"
    pl.DataFrame({"docs": [7_300_000], "tokens": [9_500_000_000]}).write_csv(stats)
    out = {k: str(tmp_path / f"{k}.csv") for k in ("compute", "mcqa", "ranking", "judgments")}
    # The keys come from the workflow, not from the layout: the same files under flat names
    # (and MCQA JSONs without family/size/ckpt fields) give the same tables.
    flat = tmp_path / "flat"
    flat.mkdir()
    mcqa, judgments = [], []
    for k, p in enumerate(inputs["mcqa"]):
        data = json.loads(Path(p).read_text())
        (flat / f"{k}.json").write_text(json.dumps({"tasks": data["tasks"]}))
        mcqa.append(str(flat / f"{k}.json"))
    for k, p in enumerate(inputs["judgments"]):
        (flat / f"{k}.parquet").write_bytes(Path(p).read_bytes())
        judgments.append(str(flat / f"{k}.parquet"))
    pairs = {f"{f}/{s}": n for f, s, n in inputs["pairs"]}  # the rule's form
    res = write_tables(inputs["checkpoints"], mcqa, inputs["mcqa_keys"], inputs["fits"], pairs,
                       out["compute"], out["mcqa"], out["ranking"], str(tmp_path / "summary.md"),
                       judgments=judgments, judgment_keys=inputs["judgment_keys"],
                       out_judgments=out["judgments"], corpus_stats=str(stats))
    assert res == {"compute_rows": 16, "mcqa_rows": 90, "ranking_rows": 32, "judgment_rows": 24}
    back = read_table(out["mcqa"])
    assert back["size"].dtype == pl.String and back["flops"].dtype == pl.Float64
    assert back.equals(tables["mcqa"])
    assert read_table(out["ranking"]).equals(tables["ranking"])
    assert read_table(out["compute"]).equals(tables["compute"])
    assert pl.read_csv(out["judgments"]).equals(tables["judgments"])
    assert "| 7300000 | 9500000000 |" in (tmp_path / "summary.md").read_text()


def test_keys_must_match_the_files(inputs, tmp_path):
    args = dict(checkpoints=inputs["checkpoints"], fits=inputs["fits"], pairs=inputs["pairs"],
                out_compute=str(tmp_path / "c.csv"), out_mcqa=str(tmp_path / "m.csv"),
                out_ranking=str(tmp_path / "r.csv"), out_summary=str(tmp_path / "s.md"))
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
