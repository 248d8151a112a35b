"""Fine-tune XLM-RoBERTa as a medical-document classifier on the LLM labels (paper: P 0.95, R 0.80).

Trains on the annotated sample minus the human-labelled validation docs (those stay unseen for
`validate`), holds out a stratified, seeded test split and reports precision/recall/F1/accuracy on
it against the LLM labels in out_dir/metrics.json (argmax decision), and the test split's scores
in out_dir/test_scores.parquet (id, label, score = P(medical)), from which `validate` reports the
split at the filter's threshold and draws the precision-recall curve. The model directory is
written atomically.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from medadapt.corpus.classify import clip_chars
from medadapt.corpus.metrics import binary_metrics
from medadapt.io import atomic_path, write_json

ID2LABEL = {0: "not_medical", 1: "medical"}
TEST_SCORES = "test_scores.parquet"
LABEL2ID = {v: k for k, v in ID2LABEL.items()}
# Fine-tuning constants that are not study settings (not config keys).
WEIGHT_DECAY = 0.01
LOGGING_STEPS = 50


def read_annotations(annotations: list[str]) -> pl.DataFrame:
    """Concatenate annotation chunks (id, label); errors name the file."""
    frames = []
    for path in annotations:
        df = pl.read_parquet(path)
        missing = {"id", "label"} - set(df.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)} (found {df.columns})")
        frames.append(df.select(pl.col("id").cast(pl.String), pl.col("label").cast(pl.Int64)))
    if not frames:
        raise ValueError("no annotation files given")
    out = pl.concat(frames)
    dup = out.filter(pl.col("id").is_duplicated())["id"].unique().to_list()
    if dup:
        raise ValueError(f"annotations {annotations}: id(s) annotated more than once: {dup[:10]}")
    return out


def labelled_training_docs(sample: str, annotations: list[str]) -> pl.DataFrame:
    """Non-validation sample docs with a parsed LLM label: id, text, label."""
    docs = pl.read_parquet(sample, columns=["id", "text", "is_validation"])
    docs = docs.filter(~pl.col("is_validation")).drop("is_validation")
    labelled = docs.join(read_annotations(annotations), on="id", how="inner")
    labelled = labelled.filter(pl.col("label").is_not_null())
    classes = sorted(labelled["label"].unique().to_list())
    if classes != [0, 1]:
        raise ValueError(f"annotations {annotations}: the labelled non-validation docs of {sample} "
                         f"({labelled.height}) contain class(es) {classes} only; training needs both "
                         "medical (1) and not medical (0) examples")
    return labelled


def stratified_split(labels, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): each class contributes round(test_size * count) to test, at least 1
    when it has 2+ members, so the test split always holds both classes."""
    if not 0 < test_size < 1:
        raise ValueError(f"params.test_size must be in (0, 1), got {test_size}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        k = int(round(test_size * idx.size))
        k = min(max(k, 1 if idx.size >= 2 else 0), idx.size - 1)
        test.append(idx[:k])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    return train_idx, test_idx


def _dataset(tokenizer, texts: list[str], labels: list[int], max_length: int):
    from datasets import Dataset

    ds = Dataset.from_dict({"text": texts, "label": labels})
    def tokenize(batch):
        return tokenizer(clip_chars(batch["text"], max_length), truncation=True, max_length=max_length)

    return ds.map(tokenize, batched=True, remove_columns=["text"])


def train_classifier(sample: str, annotations: list[str], base_model: str, out_dir: str,
                     classifier: dict, seed: int) -> dict:
    """Stage `corpus_classifier`: fine-tune `base_model` (local dir or hub id) on the LLM labels and
    save it with metrics.json to `out_dir`. `classifier`: the resolved `corpus.classifier` block."""
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainingArguments)

    annotations = [str(a) for a in annotations]
    docs = labelled_training_docs(sample, annotations)
    y = docs["label"].to_numpy()
    train_idx, test_idx = stratified_split(y, float(classifier["test_size"]), seed)
    texts = docs["text"].to_list()
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    max_length = int(classifier["max_length"])
    train_ds = _dataset(tokenizer, [texts[i] for i in train_idx], y[train_idx].tolist(), max_length)
    test_ds = _dataset(tokenizer, [texts[i] for i in test_idx], y[test_idx].tolist(), max_length)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    with tempfile.TemporaryDirectory(prefix="clf-trainer-") as scratch:
        args = TrainingArguments(
            output_dir=scratch, num_train_epochs=float(classifier["epochs"]),
            learning_rate=float(classifier["learning_rate"]),
            per_device_train_batch_size=int(classifier["batch_size"]),
            per_device_eval_batch_size=int(classifier["batch_size"]),
            weight_decay=WEIGHT_DECAY, seed=seed, data_seed=seed, bf16=bf16,
            dataloader_pin_memory=torch.cuda.is_available(),
            train_sampling_strategy="group_by_length",  # less padding on web docs of mixed length
            save_strategy="no", eval_strategy="no", report_to="none",
            logging_steps=LOGGING_STEPS, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer))
        train_out = trainer.train()
        # transformers 5 groups evaluation batches by length too (Trainer._get_eval_sampler), so
        # predict() would return the logits out of the test set's order: predict in order.
        trainer.args.train_sampling_strategy = "sequential"
        logits = trainer.predict(test_ds).predictions
    logits = np.asarray(logits, dtype=np.float64)
    metrics = binary_metrics(y[test_idx], logits.argmax(-1))
    # P(medical) exactly as the classify stage computes it (softmax over the two logits).
    z = np.exp(logits - logits.max(-1, keepdims=True))
    test_scores = pl.DataFrame({"id": docs["id"].gather(test_idx), "label": y[test_idx],
                                "score": (z[:, LABEL2ID["medical"]] / z.sum(-1)).astype(np.float32)})
    metrics.update({"reference": "llm_annotator", "split": "test", "n_train": int(train_idx.size),
                    "n_test": int(test_idx.size), "train_medical": int(y[train_idx].sum()),
                    "test_medical": int(y[test_idx].sum()), "train_loss": float(train_out.training_loss),
                    "base_model": base_model, "params": {**classifier, "seed": seed}})
    with atomic_path(out_dir) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(Path(tmp) / "metrics.json", metrics)
        test_scores.write_parquet(Path(tmp) / TEST_SCORES)
    print(f"[classifier] trained on {train_idx.size} docs; test {test_idx.size}: "
          f"P {metrics['precision']:.3f} R {metrics['recall']:.3f} F1 {metrics['f1']:.3f}", flush=True)
    return metrics
