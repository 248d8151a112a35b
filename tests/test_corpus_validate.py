"""Validation as the paper reports it: the validation file (both shapes), majority vote, agreement
statistics computed by hand on tiny tables, per-annotator F1 mean ± sd, the classifier's test split,
the PR curve, and the error for unknown ids."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from medadapt.corpus.labels import agreement, majority, read_validation
from medadapt.corpus.validate import validate, validation_rows

# Three annotators, four documents (used below, worked out by hand)
A, B, C = [1, 0, 1, 0], [1, 0, 0, 0], [1, 0, 1, 1]


def table(*cols, names=("a", "b", "c")) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"v{i}" for i in range(len(cols[0]))],
                         **{n: pl.Series(c, dtype=pl.Int64) for n, c in zip(names, cols)}})


def test_krippendorff_alpha_and_kappa_by_hand():
    """Nominal alpha from the coincidence matrix: units (1,1,1) (0,0,0) (1,0,1) (0,0,1) give
    o00 = 3 + 1 = 4, o11 = 3 + 1 = 4, o01 = o10 = 1 + 1 = 2; n = 12, n0 = n1 = 6.
    D_o = 4/12, D_e = 2·6·6/(12·11) = 6/11, alpha = 1 - (1/3)/(6/11) = 7/18.
    Cohen's kappa: a-b p_o 3/4, p_e 1/2 -> 1/2; a-c the same; b-c p_o 1/2, p_e 3/8 -> 1/5."""
    row = agreement(table(A, B, C))
    assert row["krippendorff_alpha"] == pytest.approx(7 / 18)
    assert row["cohen_kappa_mean"] == pytest.approx((0.5 + 0.5 + 0.2) / 3)
    assert (row["annotators"], row["docs"], row["docs_all_labelled"], row["majority_ties"]) == (3, 4, 4, 0)
    assert row["all_agree"] == 0.5


def test_alpha_with_missing_labels_by_hand():
    """A fifth unit labelled (1, -, 1) adds o11 += 2/(2-1) = 2: o00 4, o11 6, o01 = o10 2, n 14,
    n0 6, n1 8. D_o = 4/14, D_e = 2·6·8/(14·13) = 48/91, alpha = 1 - (2/7)/(48/91) = 11/24.
    A unit with one label only is not pairable and changes nothing."""
    labels = table(A + [1, None], B + [None, None], C + [1, 1])
    row = agreement(labels)
    assert row["krippendorff_alpha"] == pytest.approx(11 / 24)
    assert (row["docs"], row["docs_all_labelled"]) == (6, 4)


def test_majority_with_ties_and_single_annotator():
    assert majority(table(A, B, C)).to_list() == [1, 0, 1, 0]
    two = table([1, 1, 0, None], [0, 1, 0, None], names=("a", "b"))
    assert majority(two).to_list() == [None, 1, 0, None]  # a 1-1 tie and no labels: no majority
    assert agreement(two)["majority_ties"] == 2
    one = table([1, 0], names=("human",))
    assert majority(one).to_list() == [1, 0]
    assert agreement(one)["krippendorff_alpha"] is None and agreement(one)["cohen_kappa_mean"] is None


def test_validation_rows_by_hand():
    """LLM [1,0,1,1] vs a: tp 2 fp 1 -> F1 0.8; vs b: tp 1 fp 2 -> F1 0.5; vs c: F1 1.
    Mean 2.3/3, sample sd sqrt(((0.8-m)^2 + (0.5-m)^2 + (1-m)^2) / 2). Majority = a -> F1 0.8.
    Classifier scores [.9,.2,.4,.6] at 0.5 -> [1,0,0,1] vs majority [1,0,1,0]: P = R = F1 = 0.5.
    Test split labels [1,1,0,0,1], scores [.9,.3,.6,.1,.7] -> [1,0,1,0,1]: P = R = 2/3."""
    labels = table(A, B, C)
    test = pl.DataFrame({"label": [1, 1, 0, 0, 1], "score": [0.9, 0.3, 0.6, 0.1, 0.7]})
    rows = validation_rows(labels, pl.Series([1, 0, 1, 1]), pl.Series([0.9, 0.2, 0.4, 0.6]), test, 0.5)
    by = {(r["system"], r["reference"]): r for r in rows}
    assert [by[("llm_annotator", f"annotator:{a}")]["f1"] for a in "abc"] == pytest.approx([0.8, 0.5, 1.0])
    mean = by[("llm_annotator", "annotators (mean ± sd)")]
    m = 2.3 / 3
    assert mean["f1"] == pytest.approx(m)
    assert mean["f1_sd"] == pytest.approx(np.sqrt(((0.8 - m) ** 2 + (0.5 - m) ** 2 + (1 - m) ** 2) / 2))
    assert (mean["paper_f1"], mean["paper_f1_sd"]) == (0.911, 0.025)
    assert by[("llm_annotator", "majority")]["f1"] == pytest.approx(0.8)
    clf = by[("classifier", "majority")]
    assert (clf["precision"], clf["recall"], clf["f1"], clf["split"]) == (0.5, 0.5, 0.5, "validation")
    t = by[("classifier", "llm_annotator")]
    assert (t["split"], t["n"], t["paper_precision"], t["paper_recall"]) == ("test", 5, 0.95, 0.80)
    assert t["precision"] == pytest.approx(2 / 3) and t["recall"] == pytest.approx(2 / 3)


def test_validation_file_shapes_and_errors(tmp_path):
    f = tmp_path / "v.jsonl"
    f.write_text('{"id": 1, "labels": {"x": 1, "y": false}}\n{"id": "2", "labels": {"x": 0}}\n')
    df = read_validation(str(f))
    assert df.columns == ["id", "x", "y"] and df["id"].to_list() == ["1", "2"]
    assert df["y"].to_list() == [0, None]
    f.write_text('{"id": "1", "label": true}\n')
    assert read_validation(str(f)).columns == ["id", "human"]
    for text, match in [('{"id": "1", "label": 1}\n{"id": "2", "labels": {"x": 1}}\n', "mixes records"),
                        ('{"id": "1", "label": 1, "labels": {"x": 1}}\n', "exactly one of 'label' or 'labels'"),
                        ('{"id": "1", "labels": {"x": 2}}\n', r"record 1 \(id 1\): label of x must be 1/0"),
                        ('{"id": "1", "label": 1}\n{"id": "1", "label": 0}\n', r"id\(s\) listed more than once: \['1'\]")]:
        f.write_text(text)
        with pytest.raises(ValueError, match=match):
            read_validation(str(f))
    with pytest.raises(FileNotFoundError, match="corpus.validation: .*nope.jsonl' does not exist"):
        read_validation(str(tmp_path / "nope.jsonl"))


@pytest.fixture
def stage_inputs(tmp_path):
    ids = ["v0", "v1", "v2", "v3", "x0"]
    sample = tmp_path / "sample.parquet"
    pl.DataFrame({"id": ids, "text": ["t"] * 5, "shard": ["s"] * 5,
                  "is_validation": [True] * 4 + [False]}).write_parquet(sample)
    vfile = tmp_path / "human.jsonl"
    vfile.write_text("".join(json.dumps({"id": f"v{i}", "labels": {"a": A[i], "b": B[i], "c": C[i]}}) + "\n"
                             for i in range(4)))
    pl.DataFrame({"id": ["v0", "v1", "x0"], "label": [1, 0, 1], "raw": ["r"] * 3}).write_parquet(tmp_path / "c0.parquet")
    pl.DataFrame({"id": ["v2", "v3"], "label": [1, 1], "raw": ["r"] * 2}).write_parquet(tmp_path / "c1.parquet")
    group = tmp_path / "scores" / "group-0000"
    group.mkdir(parents=True)
    pl.DataFrame({"id": ids, "score": [0.9, 0.2, 0.4, 0.6, 0.99]},
                 schema={"id": pl.String, "score": pl.Float32}).write_parquet(group / "s.parquet")
    clf = tmp_path / "classifier"
    clf.mkdir()
    pl.DataFrame({"id": [f"t{i}" for i in range(5)], "label": [1, 1, 0, 0, 1],
                  "score": [0.9, 0.3, 0.6, 0.1, 0.7]}).write_parquet(clf / "test_scores.parquet")
    return tmp_path, [str(tmp_path / "c0.parquet"), str(tmp_path / "c1.parquet")], [str(group)], str(clf), str(vfile)


def test_validate_stage_writes_tables_and_curve(stage_inputs):
    tmp, annotations, scores, clf, vfile = stage_inputs
    outs = {k: str(tmp / f) for k, f in (("out", "val.csv"), ("agreement_out", "agree.csv"),
                                         ("pr_png", "pr.png"), ("pr_svg", "pr.svg"))}
    validate(str(tmp / "sample.parquet"), annotations, scores, clf, vfile, 0.5, **outs)
    val = pl.read_csv(outs["out"])
    assert val.columns[:8] == ["system", "reference", "split", "n", "excluded", "precision", "recall", "f1"]
    assert val.height == 3 + 4  # 3 annotators, mean, majority, classifier x2
    maj = val.filter((pl.col("system") == "llm_annotator") & (pl.col("reference") == "majority"))
    assert maj["f1"][0] == pytest.approx(0.8)  # same LLM labels and annotators as the hand example
    assert pl.read_csv(outs["agreement_out"])["krippendorff_alpha"][0] == pytest.approx(7 / 18)
    assert open(outs["pr_png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    svg = open(outs["pr_svg"]).read()
    assert "<svg" in svg and "recall" in svg and "threshold 0.5" in svg


def test_validate_unknown_ids_and_missing_scores(stage_inputs):
    tmp, annotations, scores, clf, vfile = stage_inputs
    outs = [str(tmp / f) for f in ("o.csv", "a.csv", "p.png", "p.svg")]
    with open(vfile, "a") as fh:
        fh.write('{"id": "zz9", "labels": {"a": 1}}\n')
    with pytest.raises(ValueError, match=r"sample\.parquet: validation id\(s\) from .*human\.jsonl.*\['zz9'\]"):
        validate(str(tmp / "sample.parquet"), annotations, scores, clf, vfile, 0.5, *outs)
    with open(vfile, "w") as fh:
        fh.write('{"id": "v0", "labels": {"a": 1}}\n')
    pl.DataFrame({"id": ["v1"], "score": [0.5]}).write_parquet(scores[0] + "/s.parquet")
    with pytest.raises(ValueError, match=r"no classifier score for validation id\(s\) \['v0'\]"):
        validate(str(tmp / "sample.parquet"), annotations, scores, clf, vfile, 0.5, *outs)
