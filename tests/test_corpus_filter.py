"""Per-shard statistics and the filter (threshold, exact dedup, FineMed-de table), against counts
worked out by hand; metrics; stale or missing inputs fail naming the file."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medadapt.corpus.filter import filter_corpus
from medadapt.corpus.metrics import binary_metrics
from medadapt.corpus.stats import BIN_COLUMNS, score_histogram, shard_stats


def test_binary_metrics_by_hand():
    m = binary_metrics([1, 1, 1, 0, 0, 0, 1, 0], [1, 1, 0, 1, 0, 0, 0, 0])
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 2, 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)) and m["accuracy"] == 5 / 8
    none = binary_metrics([0, 0], [0, 0])  # no positives at all: 0 by convention, no division error
    assert none["precision"] == none["recall"] == none["f1"] == 0.0 and none["accuracy"] == 1.0
    with pytest.raises(ValueError, match="labels must be 0/1"):
        binary_metrics([0, 2], [0, 1])
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        binary_metrics([0, 1, 1], [0, 1])


def test_binary_metrics_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    m = binary_metrics(t, p)
    assert m["precision"] == pytest.approx(sk.precision_score(t, p))
    assert m["recall"] == pytest.approx(sk.recall_score(t, p))
    assert m["f1"] == pytest.approx(sk.f1_score(t, p))


def test_score_histogram_bins_float32_scores():
    scores = np.array([0.0, 0.1, 0.7, 0.95, 0.999, 1.0, 0.49], dtype=np.float32)
    assert score_histogram(scores).tolist() == [1, 1, 0, 0, 1, 0, 0, 1, 0, 3]


def _tokenizer(path, pre):
    """A word-level tokenizer whose token counts are known by hand (every word is [UNK])."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from tokenizers import pre_tokenizers

    root = tmp_path_factory.mktemp("tok")
    # "ws": whitespace-separated words; "punct": also splits punctuation ("2." -> "2", ".")
    return [_tokenizer(root / "ws", pre_tokenizers.WhitespaceSplit()),
            _tokenizer(root / "punct", pre_tokenizers.Whitespace())], ["ws", "punct"]


def _scores(path, ids, scores):
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"id": ids, "score": scores}, schema={"id": pl.String, "score": pl.Float32}).write_parquet(path)


@pytest.fixture
def corpus(tmp_path):
    """Shard a (parquet, 2 row groups), shard b (JSONL, one empty text), shard c (empty); duplicates
    across and within shards. Groups: {a, b}, {c}."""
    a = {"id": ["a0", "a1", "a2", "a3", "a4"],
         "text": ["Arzt und Patient", "Fußball", "Arzt und Patient", "Diabetes Typ 2.", "Wetter"]}
    pq.write_table(pa.table(a), tmp_path / "shard-a.parquet", row_group_size=3)
    b = [{"id": "b0", "text": "Diabetes Typ 2."}, {"id": "b1", "text": "Hypertonie"}, {"id": "b2", "text": "Kino"},
         {"id": "b3", "text": ""}]
    (tmp_path / "shard-b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in b))
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}),
                   tmp_path / "shard-c.parquet")
    g0, g1 = tmp_path / "scores" / "group-0000", tmp_path / "scores" / "group-0001"
    _scores(g0 / "shard-a.parquet", ["a4", "a3", "a2", "a1", "a0"], [0.1, 0.9, 0.8, 0.2, 0.7])
    _scores(g0 / "shard-b.parquet", ["b0", "b1", "b2", "b3"], [0.95, 0.5, 0.49, None])
    _scores(g1 / "shard-c.parquet", [], [])
    shards = [str(tmp_path / f) for f in ("shard-a.parquet", "shard-b.jsonl", "shard-c.parquet")]
    return shards, ["shard-a", "shard-b", "shard-c"], [str(g0), str(g1)]


def _stats(tmp_path, corpus, tokenizers, threshold=0.5):
    shards, names, groups = corpus
    out = [str(tmp_path / "stats" / "group-0000.parquet"), str(tmp_path / "stats" / "group-0001.parquet")]
    shard_stats(shards[:2], names[:2], [groups[0]], *tokenizers, threshold, out[0], batch_size=2)
    shard_stats(shards[2:], names[2:], [groups[1]], *tokenizers, threshold, out[1])
    return out


def test_shard_stats_by_hand(tmp_path, corpus, tokenizers):
    out = _stats(tmp_path, corpus, tokenizers)
    rows = {r["shard"]: r for r in pl.concat([pl.read_parquet(p) for p in out]).to_dicts()}
    a, b, c = rows["shard-a"], rows["shard-b"], rows["shard-c"]
    # a: above a0 a2 a3 (3 + 3 + 3 words; "2." is 2 punct tokens), below a1 a4
    assert (a["docs"], a["docs_above"], a["docs_below"], a["docs_skipped_empty"]) == (5, 3, 2, 0)
    assert (a["chars_above"], a["chars_below"]) == (16 + 16 + 15, 7 + 6)
    assert (a["tokens_above_ws"], a["tokens_above_punct"], a["tokens_below_ws"]) == (9, 10, 2)
    assert [a[c_] for c_ in BIN_COLUMNS] == [0, 1, 1, 0, 0, 0, 0, 1, 1, 1]
    assert (b["docs"], b["docs_above"], b["docs_below"], b["docs_skipped_empty"]) == (4, 2, 1, 1)
    assert (b["chars_above"], b["tokens_above_ws"], b["tokens_above_punct"]) == (15 + 10, 4, 5)
    assert [b[c_] for c_ in BIN_COLUMNS] == [0, 0, 0, 0, 1, 1, 0, 0, 0, 1]
    assert c["docs"] == 0 and c["tokens_above_ws"] == 0 and sum(c[c_] for c_ in BIN_COLUMNS) == 0


def test_filter_threshold_dedup_table(tmp_path, corpus, tokenizers):
    shards, names, groups = corpus
    stats = _stats(tmp_path, corpus, tokenizers)
    out, table = tmp_path / "finemed.parquet", tmp_path / "corpus_stats.csv"
    summary = filter_corpus(shards, names, groups, stats, *tokenizers, 0.5, str(out), str(table), batch_size=2)
    kept = pl.read_parquet(out)
    assert kept.columns == ["id", "text", "shard", "score"] and kept["score"].dtype == pl.Float32
    # a0 kept, a2 duplicate of a0, a3 kept, b0 duplicate of a3, b1 kept at exactly the threshold
    assert kept["id"].to_list() == ["a0", "a3", "b1"]
    assert kept["shard"].to_list() == ["shard-a", "shard-a", "shard-b"]
    rows = pl.read_csv(table).to_dicts()
    assert [r["shard"] for r in rows] == ["total", "shard-a", "shard-b", "shard-c"]
    total, a, b, c = rows
    assert (a["docs_kept"], a["docs_dropped"], a["duplicates_removed"], a["docs_below_threshold"]) == (2, 3, 1, 2)
    assert (a["chars_kept"], a["chars_dropped"]) == (16 + 15, 13 + 16)
    assert (a["tokens_kept_ws"], a["tokens_dropped_ws"], a["tokens_kept_punct"], a["tokens_dropped_punct"]) == (6, 5, 7, 5)
    assert (b["docs_kept"], b["docs_dropped"], b["duplicates_removed"], b["docs_skipped_empty"]) == (1, 3, 1, 1)
    assert (b["chars_kept"], b["chars_dropped"], b["tokens_kept_punct"], b["tokens_dropped_punct"]) == (10, 19, 1, 5)
    assert (c["docs_total"], c["docs_kept"], c["kept_fraction"]) == (0, 0, 0.0)
    assert (total["docs_total"], total["docs_kept"], total["docs_dropped"], total["duplicates_removed"]) == (9, 3, 6, 2)
    assert total["kept_fraction"] == pytest.approx(1 / 3) and total["threshold"] == 0.5
    assert (total["tokens_kept_ws"], total["tokens_dropped_ws"]) == (7, 9)  # 16 words in all
    assert (total["chars_kept"], total["chars_dropped"]) == (41, 48)
    assert [total[c_] for c_ in BIN_COLUMNS] == [0, 1, 1, 0, 1, 1, 0, 1, 1, 2]
    assert summary == {"docs_total": 9, "docs_kept": 3, "duplicates_removed": 2}


def test_filter_errors_name_the_file(tmp_path, corpus, tokenizers):
    shards, names, groups = corpus
    stats = _stats(tmp_path, corpus, tokenizers)
    args = (stats, *tokenizers, 0.5, str(tmp_path / "o.parquet"), str(tmp_path / "s.csv"))
    with pytest.raises(ValueError, match=r"no score file for shard 'shard-c'"):
        filter_corpus(shards, names, groups[:1], *args)
    g0 = tmp_path / "scores" / "group-0000"
    _scores(g0 / "shard-b.parquet", ["b0", "b1", "b3"], [0.9, 0.9, None])
    with pytest.raises(ValueError, match=r"shard-b\.parquet: no score for document\(s\) \['b2'\]"):
        filter_corpus(shards, names, groups, *args)
    _scores(g0 / "shard-b.parquet", ["b0", "b1", "b2", "b3"], [0.9, 0.9, 0.1, 0.3])  # b3's text is empty
    with pytest.raises(ValueError, match=r"shard-b\.parquet: score presence does not match.*\['b3'\]"):
        filter_corpus(shards, names, groups, *args)
    _scores(g0 / "shard-b.parquet", ["b0", "b1", "b2", "b3"], [0.95, 0.5, 0.6, None])  # b2 now above
    with pytest.raises(ValueError, match=r"statistics of shard 'shard-b'.*stale corpus_shard_stats"):
        filter_corpus(shards, names, groups, *args)
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "s.csv").exists()
