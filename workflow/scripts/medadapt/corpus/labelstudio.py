"""Label Studio round trip for the human validation labels.

Export: the documents to label as a JSON list of tasks in Label Studio's import format
(`[{"data": {"text": ..., "doc_id": ...}}, ...]`) plus the labelling interface (LABEL_CONFIG: one
single-choice question, "medical" / "not_medical"), to paste under Settings → Labeling Interface.

Import: Label Studio's JSON export (Export → JSON) is a list of tasks, each with its `data` and
`annotations: [{completed_by, was_cancelled, result: [{from_name, to_name, type: "choices",
value: {choices: [...]}}], ...}]`. Every annotator becomes one label column of the validation
file (medadapt.corpus.labels), named after `completed_by`: the user's email where the export
carries a user object, else "user<id>". Skipped (cancelled) and empty annotations give no label
and are counted; a task without our `doc_id`, an unknown choice, or two annotations by one person
on one task are errors naming the task.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from medadapt.corpus.labels import read_validation, write_validation
from medadapt.io import atomic_path

FROM_NAME, TO_NAME = "medical", "text"
CHOICES = {"medical": 1, "not_medical": 0}
LABEL_CONFIG = f"""<View>
  <Header value="Ist dieses Dokument medizinisch / klinisch? (Is this document medical or clinical?)"/>
  <Text name="{TO_NAME}" value="$text"/>
  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true" required="true">
    <Choice value="medical"/>
    <Choice value="not_medical"/>
  </Choices>
</View>
"""


def tasks(docs: pl.DataFrame) -> list[dict]:
    """Label Studio import tasks for documents (id, text); our id travels as data.doc_id."""
    return [{"data": {"text": r["text"], "doc_id": str(r["id"])}} for r in docs.iter_rows(named=True)]


def write_tasks(docs: pl.DataFrame, out_tasks: str, out_config: str) -> int:
    with atomic_path(out_tasks) as tmp:
        tmp.write_text(json.dumps(tasks(docs), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    with atomic_path(out_config) as tmp:
        tmp.write_text(LABEL_CONFIG, encoding="utf-8")
    return docs.height


def export_validation(sample: str, out_tasks: str, out_config: str) -> dict:
    """Stage `corpus_labelstudio`: the validation documents of the sample as Label Studio tasks, so
    more annotators can label them (the paper: three per document)."""
    docs = pl.read_parquet(sample, columns=["id", "text", "is_validation"]).filter(pl.col("is_validation"))
    return {"tasks": write_tasks(docs.select("id", "text"), out_tasks, out_config)}


def draw_documents(sample: str, n: int, seed: int) -> pl.DataFrame:
    """n documents of the annotation sample (seeded, without replacement), for a first labelling."""
    docs = pl.read_parquet(sample, columns=["id", "text"])
    if n > docs.height:
        raise ValueError(f"{sample}: {n} documents requested but the sample has {docs.height}")
    rows = np.sort(np.random.default_rng(seed).choice(docs.height, size=n, replace=False))
    return docs[rows.tolist()]


def _annotator(completed_by, task_id) -> str:
    if isinstance(completed_by, dict):  # some exports carry the user object
        if completed_by.get("email"):
            return str(completed_by["email"])
        completed_by = completed_by.get("id")
    if completed_by is None:
        raise ValueError(f"task {task_id}: an annotation without completed_by")
    return f"user{completed_by}"


def _choice(result: list, task_id) -> int | None:
    picks = [r for r in result if r.get("from_name") == FROM_NAME and r.get("type") == "choices"]
    if not picks:
        return None
    choices = picks[0].get("value", {}).get("choices", [])
    if len(picks) > 1 or len(choices) != 1 or choices[0] not in CHOICES:
        raise ValueError(f"task {task_id}: expected one of {sorted(CHOICES)} in '{FROM_NAME}', got "
                         f"{[p.get('value', {}).get('choices') for p in picks]}")
    return CHOICES[choices[0]]


def read_export(path: str) -> tuple[pl.DataFrame, dict]:
    """(labels: id + one Int64 column per annotator, counts of tasks/annotations used and skipped)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg}); expected Label Studio's JSON export") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of tasks (Label Studio's JSON export)")
    rows: dict[str, dict] = {}
    counts = {"tasks": len(data), "annotations": 0, "cancelled": 0, "no_choice": 0}
    for task in data:
        task_id = task.get("id")
        doc = (task.get("data") or {}).get("doc_id")
        if doc is None:
            raise ValueError(f"{path}: task {task_id} has no data.doc_id (tasks must come from "
                             "`medadapt labelstudio export`)")
        doc = str(doc)
        if doc in rows:
            raise ValueError(f"{path}: doc_id {doc} appears in more than one task (task {task_id})")
        row = rows[doc] = {}
        for ann in task.get("annotations") or []:
            who = _annotator(ann.get("completed_by"), task_id)
            if ann.get("was_cancelled"):
                counts["cancelled"] += 1
                continue
            label = _choice(ann.get("result") or [], task_id)
            if label is None:
                counts["no_choice"] += 1
                continue
            if who in row:
                raise ValueError(f"{path}: task {task_id} (doc_id {doc}) has two annotations by {who}")
            row[who] = label
            counts["annotations"] += 1
    names = sorted({a for r in rows.values() for a in r})
    if not names:
        raise ValueError(f"{path}: no completed annotations with a '{FROM_NAME}' choice")
    df = pl.DataFrame([{"id": d, **{a: r.get(a) for a in names}} for d, r in rows.items()],
                      schema={"id": pl.String, **dict.fromkeys(names, pl.Int64)})
    return df, counts


def merge_labels(existing: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Add the new annotators' columns (and documents) to existing labels; an annotator present in
    both must agree wherever both have a label."""
    shared = sorted(set(existing.columns) & set(new.columns) - {"id"})
    both = existing.join(new, on="id", how="inner", suffix="_new")
    for a in shared:
        clash = both.filter(pl.col(a).is_not_null() & pl.col(f"{a}_new").is_not_null()
                            & (pl.col(a) != pl.col(f"{a}_new")))
        if clash.height:
            raise ValueError(f"annotator {a} labels document(s) {clash['id'].to_list()[:10]} differently "
                             "in the existing file and the export")
    merged = existing.join(new, on="id", how="full", coalesce=True, suffix="_new", maintain_order="left")
    for a in shared:
        merged = merged.with_columns(pl.coalesce(a, f"{a}_new").alias(a)).drop(f"{a}_new")
    return merged


def import_export(export: str, out: str, merge: str | None = None) -> dict:
    """Write the validation file `out` ({id, labels: {...}}) from a Label Studio JSON export,
    optionally adding to the annotators of an existing validation file `merge`."""
    labels, counts = read_export(export)
    if merge:
        labels = merge_labels(read_validation(merge), labels)
    write_validation(out, labels)
    return {**counts, "documents": labels.height, "annotators": [c for c in labels.columns if c != "id"]}


class LabelsNeeded(RuntimeError):
    """The corpus chain stops here until people have labelled the drawn documents (not a fault that
    a retry could mend: the job fails the same way until the validation file exists)."""


# A different stream from the annotation sample's (same config seed), so the documents to label
# are a draw of their own, as the paper's 100 random documents were.
ROUND_SEED_OFFSET = 7919


def labelling_round(shards: list[str], n: int, seed: int, validation_file: str, out: str) -> dict:
    """Stage `corpus_labelling_round`, the first labelling round from nothing: draws `n` documents
    of the raw corpus (stratified over the shards like the annotation sample, seeded), writes them
    into the directory of `out` as a Label Studio project (tasks.json + label_config.xml), as plain JSONL for
    annotators without Label Studio (documents.jsonl: id, text, label left empty) and a NEXT_STEPS.txt,
    then stops the corpus chain with `LabelsNeeded`, whose message says what to do next.

    `out` (the rule's output) is never written: the job fails, so the sample waits. Its directory is
    not a declared output of the rule: Snakemake deletes the outputs of a failed job,
    and these files are what the annotators need. A rerun before the labels exist draws the same
    documents and rewrites the same files; once `validation_file` exists this job is not planned.
    """
    from medadapt.corpus.sample import stratified_sample

    if Path(validation_file).is_file():  # a stale plan: nothing to stop
        return {"validation_file": validation_file, "documents": 0}
    folder = Path(out).parent
    folder.mkdir(parents=True, exist_ok=True)
    drawn = folder / "documents.parquet"
    summary = stratified_sample(shards, n, seed + ROUND_SEED_OFFSET, None, str(drawn))
    docs = pl.read_parquet(drawn, columns=["id", "text"])
    if docs.height < n:
        raise ValueError(f"corpus.validation_size: {n} documents to label, but the shards hold only "
                         f"{docs.height} with usable text")
    write_tasks(docs, str(folder / "tasks.json"), str(folder / "label_config.xml"))
    with atomic_path(folder / "documents.jsonl") as tmp:
        tmp.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "label": None}, ensure_ascii=False)
                               + "\n" for r in docs.iter_rows(named=True)), encoding="utf-8")
    steps = next_steps(folder, validation_file, docs.height)
    with atomic_path(folder / "NEXT_STEPS.txt") as tmp:
        tmp.write_text(steps + "\n", encoding="utf-8")
    print(f"[labelling] drew {docs.height} of {summary['docs_total']} documents for the first labelling "
          f"round into {folder}", flush=True)
    raise LabelsNeeded(steps)


def next_steps(out: Path, validation_file: str, n: int) -> str:
    return (f"The corpus chain needs human labels first: {validation_file} does not exist. {n} documents "
            f"to label are in {out}/. (1) Label them: in Label Studio, create a project, paste "
            f"{out}/label_config.xml under Settings > Labeling Interface and import {out}/tasks.json "
            f"(the paper: three annotators per document); or fill the `label` of each line of "
            f"{out}/documents.jsonl (1 medical, 0 not) and save it as {validation_file} with `label` "
            f"as the field name. (2) From Label Studio: Export > JSON, then `medadapt labelstudio import "
            f"EXPORT.json --out {validation_file}`. (3) Rerun the workflow: it continues from here.")
