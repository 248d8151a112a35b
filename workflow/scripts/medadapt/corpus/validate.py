"""Validate the corpus labels the way the paper reports them.

- LLM annotator vs each human annotator (precision/recall/F1), their mean ± sample sd across
  annotators (the paper: F1 91.1 ± 2.5 over 3 annotators, 100 documents) and vs the majority vote;
- inter-annotator agreement (Krippendorff's alpha, mean pairwise Cohen's kappa);
- the classifier vs the human majority on the validation documents, and on its own test split vs
  the LLM labels (the paper: precision 0.95, recall 0.80), both at the filter's threshold
  (score >= threshold), so the numbers describe the rule that builds FineMed-de;
- a precision-recall curve over thresholds with the chosen threshold marked.

The validation documents were excluded from classifier training (`classifier`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from medadapt.corpus.classifier import TEST_SCORES, read_annotations
from medadapt.corpus.labels import agreement, annotators, majority, read_validation
from medadapt.corpus.metrics import binary_metrics
from medadapt.corpus.scores import read_scores, score_files
from medadapt.io import atomic_path, write_table

# The paper's numbers, shown beside ours in the same rows.
PAPER_LLM_F1 = (0.911, 0.025)  # mean, sd over 3 annotators
PAPER_CLASSIFIER = (0.95, 0.80)  # precision, recall on its test split
COLUMNS = ["system", "reference", "split", "n", "excluded", "precision", "recall", "f1", "f1_sd",
           "paper_precision", "paper_recall", "paper_f1", "paper_f1_sd"]


def _validation_scores(scores: list[str], ids: list[str]) -> pl.DataFrame:
    frames = [read_scores(path).filter(pl.col("id").is_in(ids)) for path in score_files(scores).values()]
    return pl.concat(frames).unique(subset="id", keep="first") if frames else \
        pl.DataFrame(schema={"id": pl.String, "score": pl.Float32})


def _row(system: str, reference: str, split: str, truth, pred, excluded: int, **extra) -> dict:
    m = binary_metrics(np.asarray(truth), np.asarray(pred))
    return {"system": system, "reference": reference, "split": split, "n": m["n"], "excluded": excluded,
            "precision": m["precision"], "recall": m["recall"], "f1": m["f1"], **extra}


def _compare(df: pl.DataFrame, truth: str, pred: str) -> tuple[pl.DataFrame, int]:
    """Rows where both the reference and the prediction exist, and how many were left out."""
    both = df.filter(pl.col(truth).is_not_null() & pl.col(pred).is_not_null())
    return both, df.height - both.height


def validation_rows(labels: pl.DataFrame, llm: pl.Series, score: pl.Series, test: pl.DataFrame,
                    threshold: float) -> list[dict]:
    """The rows of corpus_validation.csv (see the module docstring); `labels` from read_validation,
    `llm` and `score` aligned with its rows, `test` the classifier's test split (label, score)."""
    df = labels.with_columns(llm.alias("_llm"), majority(labels).alias("_majority"),
                             (score >= threshold).cast(pl.Int64).alias("_clf"))
    rows = []
    for a in annotators(labels):
        both, excluded = _compare(df, a, "_llm")
        rows.append(_row("llm_annotator", f"annotator:{a}", "validation", both[a], both["_llm"], excluded))
    per = pl.DataFrame(rows)
    sd = float(per["f1"].std(ddof=1)) if per.height > 1 else None
    labelled, _ = _compare(df.with_columns(pl.any_horizontal(pl.col(annotators(labels)).is_not_null())
                                           .alias("_any")), "_any", "_llm")
    rows.append({"system": "llm_annotator", "reference": "annotators (mean ± sd)", "split": "validation",
                 "n": labelled.height, "excluded": df.height - labelled.height,
                 "precision": float(per["precision"].mean()), "recall": float(per["recall"].mean()),
                 "f1": float(per["f1"].mean()), "f1_sd": sd,
                 "paper_f1": PAPER_LLM_F1[0], "paper_f1_sd": PAPER_LLM_F1[1]})
    both, excluded = _compare(df, "_majority", "_llm")
    rows.append(_row("llm_annotator", "majority", "validation", both["_majority"], both["_llm"], excluded))
    both, excluded = _compare(df, "_majority", "_clf")
    rows.append(_row("classifier", "majority", "validation", both["_majority"], both["_clf"], excluded))
    rows.append(_row("classifier", "llm_annotator", "test", test["label"],
                     (test["score"] >= threshold).cast(pl.Int64), 0,
                     paper_precision=PAPER_CLASSIFIER[0], paper_recall=PAPER_CLASSIFIER[1]))
    return rows


def validation_table(rows: list[dict]) -> pl.DataFrame:
    schema = {c: pl.String for c in COLUMNS[:3]} | {c: pl.Int64 for c in COLUMNS[3:5]} | \
        {c: pl.Float64 for c in COLUMNS[5:]}
    return pl.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], schema=schema)


def pr_curve_figure(curves: list[tuple[str, np.ndarray, np.ndarray]], threshold: float):
    """Precision over recall as the threshold sweeps, one line per (label, truth, score), the
    chosen threshold marked on each and the paper's test-split point for reference.

    Line styles and markers (not only colour) tell the curves apart, so it reads in grayscale."""
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve

    fig = Figure(figsize=(5.2, 4.4), layout="constrained")
    ax = fig.subplots()
    styles = [("black", "-", "o"), ("0.45", "--", "s"), ("0.3", ":", "^")]
    for (label, truth, score), (color, line, marker) in zip(curves, styles):
        if len(np.unique(truth)) < 2:  # no curve without both classes; say so in the legend
            ax.plot([], [], color=color, linestyle=line, label=f"{label}: one class only, no curve")
            continue
        precision, recall, _ = precision_recall_curve(truth, score)
        ax.plot(recall, precision, color=color, linestyle=line, linewidth=1.6, drawstyle="steps-post",
                label=f"{label} (n = {len(truth)})")
        m = binary_metrics(truth, (np.asarray(score) >= threshold).astype(int))
        ax.plot(m["recall"], m["precision"], marker=marker, color=color, markersize=8,
                markerfacecolor="white", markeredgewidth=1.8, linestyle="none",
                label=f"threshold {threshold:g}: P {m['precision']:.2f}, R {m['recall']:.2f}")
    ax.plot(PAPER_CLASSIFIER[1], PAPER_CLASSIFIER[0], marker="*", color="black", markersize=12,
            linestyle="none", label=f"paper, test split: P {PAPER_CLASSIFIER[0]}, R {PAPER_CLASSIFIER[1]}")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall (share of medical documents kept)",
           ylabel="precision (share of kept documents that are medical)",
           title="Medical classifier: precision-recall over thresholds")
    ax.grid(True, color="0.85", linewidth=0.6)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.9)
    return fig


def _save(fig, path: str, fmt: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150)


def validate(sample: str, annotations: list[str], scores: list[str], classifier_dir: str,
             validation_file: str, threshold: float, out: str, agreement_out: str, pr_png: str,
             pr_svg: str) -> list[dict]:
    """Stage `corpus_validate`: write `out` (COLUMNS), `agreement_out` and the PR curve."""
    labels = read_validation(validation_file)
    ids = labels["id"].to_list()
    flagged = pl.read_parquet(sample, columns=["id", "is_validation"]).filter(pl.col("is_validation"))
    absent = sorted(set(ids) - set(flagged["id"].cast(pl.String).to_list()))
    if absent:
        raise ValueError(f"{sample}: validation id(s) from {validation_file} not in the sample as "
                         f"is_validation: {absent[:10]} (unknown ids, or re-run the sample stage)")
    llm = labels.select("id").join(read_annotations([str(a) for a in annotations]), on="id", how="left",
                                   maintain_order="left")
    unlabelled = llm.filter(pl.col("label").is_null())["id"]
    if unlabelled.len():  # unparseable or missing LLM answers cannot be scored: counted in `excluded`
        print(f"[validate] {unlabelled.len()} validation doc(s) without an LLM label: "
              f"{unlabelled.head(10).to_list()}", flush=True)
    clf = labels.select("id").join(_validation_scores([str(s) for s in scores], ids), on="id", how="left",
                                   maintain_order="left")
    if clf["score"].null_count():
        missing = clf.filter(pl.col("score").is_null())["id"].head(10).to_list()
        raise ValueError(f"no classifier score for validation id(s) {missing} in {len(scores)} score "
                         "location(s) (or their text was skipped as empty / not UTF-8)")
    test_path = Path(classifier_dir) / TEST_SCORES
    if not test_path.is_file():
        raise FileNotFoundError(f"{test_path}: the classifier's test-split scores are missing "
                                "(re-run corpus_classifier)")
    test = pl.read_parquet(test_path)
    rows = validation_rows(labels, llm["label"], clf["score"], test, threshold)
    write_table(out, validation_table(rows))
    agree = agreement(labels)
    write_table(agreement_out, pl.DataFrame([agree]))
    maj = labels.with_columns(majority(labels).alias("_m"), clf["score"]).filter(pl.col("_m").is_not_null())
    fig = pr_curve_figure([("test split vs LLM labels", test["label"].to_numpy(), test["score"].to_numpy()),
                           ("validation vs human majority", maj["_m"].to_numpy(), maj["score"].to_numpy())],
                          threshold)
    _save(fig, pr_png, "png")
    _save(fig, pr_svg, "svg")
    for r in rows:
        print(f"[validate] {r['system']} vs {r['reference']} ({r['split']}): n {r['n']}, "
              f"P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f}", flush=True)
    print(f"[validate] agreement: {agree}", flush=True)
    return rows
