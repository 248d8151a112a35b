"""The human validation file: one label column per annotator, majority vote and agreement.

JSONL, one document per line, in one of two shapes (one shape per file):

    {"id": "doc-1", "labels": {"anna": 1, "ben": 0, "chris": 1}}   one label per annotator
    {"id": "doc-1", "label": 1}                                     one annotator ("human")

Labels are 1 (medical) / 0 (not medical), or true/false. An annotator may leave a document out
(key absent or null): agreement then uses Krippendorff's alpha, which allows missing labels.
`medadapt labelstudio import` writes the first shape from a Label Studio export.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl

from medadapt.io import read_jsonl, write_jsonl

SINGLE = "human"  # the annotator column of a {id, label} file


def _label(value, path, i: int, doc: str, who: str) -> int | None:
    if value is None:
        return None
    if value not in (0, 1):  # True/False compare equal to 1/0
        raise ValueError(f"{path}: record {i} (id {doc}): label of {who} must be 1/0 or true/false, "
                         f"got {value!r}")
    return int(value)


def read_validation(validation_file: str) -> pl.DataFrame:
    """id (String) and one Int64 column per annotator (null = not labelled), in file order."""
    path = Path(validation_file)
    if not path.is_file():
        raise FileNotFoundError(f"corpus.validation: '{validation_file}' does not exist; expected JSONL "
                                "{id, labels: {annotator: label}} or {id, label} of human-labelled "
                                "documents (the paper: 100 documents, 3 annotators)")
    rows, shapes = [], set()
    for i, rec in enumerate(read_jsonl(path), 1):
        if not isinstance(rec, dict) or "id" not in rec or ("label" in rec) == ("labels" in rec):
            raise ValueError(f"{path}: record {i} needs 'id' and exactly one of 'label' or 'labels' "
                             f"(got {sorted(rec) if isinstance(rec, dict) else rec!r})")
        doc = str(rec["id"])
        if "label" in rec:
            shapes.add("label")
            rows.append({"id": doc, SINGLE: _label(rec["label"], path, i, doc, SINGLE)})
            continue
        shapes.add("labels")
        labels = rec["labels"]
        if not isinstance(labels, dict) or not labels:
            raise ValueError(f"{path}: record {i} (id {doc}): 'labels' must map annotator names to "
                             f"labels, got {labels!r}")
        rows.append({"id": doc, **{str(k): _label(v, path, i, doc, str(k)) for k, v in labels.items()}})
    if len(shapes) > 1:
        raise ValueError(f"{path}: mixes records with 'label' and with 'labels'; use one shape per file")
    if not rows:
        raise ValueError(f"{path}: no records")
    annotators = sorted({k for r in rows for k in r} - {"id"})
    df = pl.DataFrame(rows, schema={"id": pl.String, **dict.fromkeys(annotators, pl.Int64)})
    dup = df.filter(pl.col("id").is_duplicated())["id"].unique().to_list()
    if dup:
        raise ValueError(f"{path}: id(s) listed more than once: {sorted(dup)[:10]}")
    return df


def write_validation(path: str, labels: pl.DataFrame) -> None:
    """Write the {id, labels: {...}} shape (annotators with no label for a document are left out)."""
    annotators = [c for c in labels.columns if c != "id"]
    write_jsonl(path, [{"id": r["id"], "labels": {a: r[a] for a in annotators if r[a] is not None}}
                       for r in labels.iter_rows(named=True)])


def annotators(labels: pl.DataFrame) -> list[str]:
    return [c for c in labels.columns if c != "id"]


def majority(labels: pl.DataFrame) -> pl.Series:
    """Majority label per document (Int64); null where the labels tie or none was given."""
    m = labels.select(annotators(labels)).to_numpy().astype(float)  # nulls -> NaN
    ones, n = np.nansum(m, axis=1), np.sum(~np.isnan(m), axis=1)
    vote = np.where(2 * ones > n, 1, 0).astype(float)
    vote[(2 * ones == n)] = np.nan  # a tie, or no label at all
    return pl.Series("majority", vote, dtype=pl.Float64).fill_nan(None).cast(pl.Int64)


def agreement(labels: pl.DataFrame) -> dict:
    """Inter-annotator agreement on the validation documents.

    krippendorff_alpha: nominal alpha over every document with 2+ labels (the `krippendorff`
    package); cohen_kappa_mean: Cohen's kappa (scikit-learn) averaged over annotator pairs, each on
    the documents both labelled; all_agree: share of fully labelled documents where everyone agrees.
    """
    names = annotators(labels)
    m = labels.select(names).to_numpy().astype(float)
    complete = ~np.isnan(m).any(axis=1)
    row = {"annotators": len(names), "docs": labels.height, "docs_all_labelled": int(complete.sum()),
           "majority_ties": int(majority(labels).is_null().sum()), "krippendorff_alpha": None,
           "cohen_kappa_mean": None,
           "all_agree": float((m[complete] == m[complete][:, :1]).all(axis=1).mean()) if complete.any() else None}
    if len(names) < 2:
        return row
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    pairable = (~np.isnan(m)).sum(axis=1) >= 2
    if pairable.any() and len(np.unique(m[pairable][~np.isnan(m[pairable])])) > 1:
        # reliability_data: annotators × units; alpha is undefined when only one value occurs
        row["krippendorff_alpha"] = float(krippendorff.alpha(reliability_data=m[pairable].T,
                                                             level_of_measurement="nominal"))
    kappas = []
    for a, b in itertools.combinations(range(len(names)), 2):
        both = ~np.isnan(m[:, a]) & ~np.isnan(m[:, b])
        if both.sum() and len(np.unique(np.concatenate([m[both, a], m[both, b]]))) > 1:
            kappas.append(cohen_kappa_score(m[both, a].astype(int), m[both, b].astype(int)))
    row["cohen_kappa_mean"] = float(np.mean(kappas)) if kappas else None
    return row
