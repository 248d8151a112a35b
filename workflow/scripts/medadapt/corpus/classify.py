"""Score every document of a group of shards with the fine-tuned classifier: per shard a parquet file
(id, score = P(medical); null for a document skipped for empty or undecodable text).

Throughput (web text of very mixed length, 100k+ documents per shard):
- the shard is streamed in windows of `window` documents, reading only `id` and `text`;
- a background thread reads, clips, tokenises and pads the next batches while the model runs (HF
  fast tokenizers release the GIL), so tokenisation overlaps inference;
- within a window documents are sorted by token length (longest first) and cut into batches under a
  token budget: documents × longest document <= `batch_tokens`. Padding stays small, and the size of
  a batch's activations is bounded whatever the lengths (a fixed document count pads short batches
  of long documents into huge, cache-unfriendly tensors on CPU, and under-fills GPUs on short ones);
- `torch.inference_mode`, SDPA attention, and on GPUs bf16 (fp16 where bf16 is missing) weights.

Resumable per shard: a group job keeps each finished shard's scores as a part file in `parts_dir`,
written atomically and tagged with a fingerprint of the shard file, the classifier weights and the
settings that change a score. `parts_dir` is none of the job's declared outputs, so it survives the
output cleanup after a failed job (Snakemake deletes every output of a failed job); the rerun reuses
every part whose fingerprint matches and scores only the rest. The declared output directory is then
filled with hard links to the parts (a copy where links are impossible).
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl

from medadapt.corpus.shards import SKIP_REASONS, iter_batches, text_with_skip
from medadapt.io import atomic_path

# Web docs can run to 100k+ characters while the model reads max_length tokens: cut the text
# first so the tokenizer does not process what truncation drops (a token is rarely > 16 chars).
_MAX_CHARS_PER_TOKEN = 16
# Batches prepared ahead of the model: enough to hide tokenisation, few enough to bound memory.
_PREFETCH_BATCHES = 8
# Part-file metadata key; bump FORMAT when the meaning of a stored score changes.
_META_KEY = b"medadapt.classify"
FORMAT = 1


def clip_chars(texts: list[str], max_length: int) -> list[str]:
    return [t[: max_length * _MAX_CHARS_PER_TOKEN] for t in texts]


def load_classifier(model_dir: str):
    """(model, tokenizer, index of the positive class); on a GPU in bf16/fp16 with SDPA attention."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype,
                                                               attn_implementation="sdpa")
    model = model.to("cuda" if cuda else "cpu").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    positive = int(model.config.label2id.get("medical", 1))
    return model, tokenizer, positive


def length_batches(lengths, batch_tokens: int) -> list[np.ndarray]:
    """Positions grouped into batches, longest documents first: a batch takes documents while
    (documents × its longest document) <= batch_tokens; a document longer than the budget forms a
    batch of its own. Longest first, so a budget too large for the device fails on the first batch."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < order.size:
        longest = int(lengths[order[start]])
        size = max(1, batch_tokens // max(longest, 1))
        batches.append(order[start:start + size])
        start += size
    return batches


def _pad(rows: list[list[int]], pad_id: int, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    width = -(-width // multiple) * multiple
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return ids, mask


@dataclass
class _Window:
    """One window of a shard: its ids, which rows were scored, and why the others were skipped."""
    ids: pl.Series
    skip: pl.Series
    scored: np.ndarray  # row positions (in the window) of documents that were scored
    tokens: int = 0
    padded: int = 0


def _prepare(windows: Iterator[pl.DataFrame], tokenizer, max_length: int, batch_tokens: int,
             pad_multiple: int, pin: bool) -> Iterator[tuple]:
    """Producer: per window of documents (id, text, skip), its ("batch", positions, input_ids,
    attention_mask) items, then ("window", _Window)."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for df in windows:
        scored = np.flatnonzero(df["skip"].is_null().to_numpy())
        win = _Window(ids=df["id"], skip=df["skip"], scored=scored)
        if scored.size:
            texts = clip_chars(df["text"].gather(scored).to_list(), max_length)
            enc = tokenizer(texts, truncation=True, max_length=max_length,
                            return_attention_mask=False)["input_ids"]
            for pos in length_batches([len(e) for e in enc], batch_tokens):
                ids, mask = _pad([enc[i] for i in pos], pad_id, pad_multiple)
                win.tokens += int(mask.sum())
                win.padded += int(mask.size)
                ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
                if pin:
                    ids_t, mask_t = ids_t.pin_memory(), mask_t.pin_memory()
                yield "batch", pos, ids_t, mask_t
        yield "window", win


class _Prefetch:
    """Run a generator in a daemon thread, handing its items over through a bounded queue;
    an exception in the thread is re-raised in the consumer, and closing stops the thread."""

    _DONE = object()

    def __init__(self, gen: Iterator, size: int):
        self._q: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(gen,), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, gen):
        try:
            for item in gen:
                if not self._put(("ok", item)):
                    return
            self._put(("ok", self._DONE))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(("error", exc))

    def __iter__(self):
        while True:
            kind, item = self._q.get()
            if kind == "error":
                raise item
            if item is self._DONE:
                return
            yield item

    def close(self):
        self._stop.set()
        self._thread.join(timeout=10)


def _score_windows(model, positive: int, items: Iterator[tuple]) -> Iterator[tuple[_Window, np.ndarray]]:
    """Consumer: run the model on each batch; yield every window with its scores (NaN = skipped)."""
    import torch

    device = next(model.parameters()).device
    pending: list = []
    with torch.inference_mode():
        for item in items:
            if item[0] == "batch":
                _, pos, ids, mask = item
                logits = model(input_ids=ids.to(device, non_blocking=True),
                               attention_mask=mask.to(device, non_blocking=True)).logits
                # Stay on the device until the window ends: one host sync per window, not per batch.
                pending.append((pos, torch.softmax(logits.float(), dim=-1)[:, positive]))
                continue
            win = item[1]
            scores = np.full(win.ids.len(), np.nan, dtype=np.float32)
            if pending:
                probs = torch.cat([p for _, p in pending]).cpu().numpy()
                pos = np.concatenate([q for q, _ in pending])
                scores[win.scored[pos]] = probs
            pending = []
            yield win, scores


def score_texts(model, tokenizer, texts: list[str], max_length: int, batch_tokens: int,
                positive: int = 1) -> np.ndarray:
    """P(positive) per text, in input order (NaN for empty text): the classify path in memory."""
    window = text_with_skip(pl.DataFrame({"id": [str(i) for i in range(len(texts))], "text": texts},
                                         schema={"id": pl.String, "text": pl.String}), "texts")
    items = _prepare(iter([window]), tokenizer, max_length, batch_tokens, 1, False)
    scores = [s for _, s in _score_windows(model, positive, items)]
    return np.concatenate(scores) if scores else np.empty(0, np.float32)


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(model_dir: str) -> str:
    """Content hash of the classifier directory (weights, config, tokenizer), so parts scored by a
    retrained classifier are never reused; provenance records are left out (they change per run)."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(Path(model_dir).rglob("*")):
        if path.is_file() and not path.name.endswith("provenance.json"):
            h.update(f"{path.relative_to(model_dir)}\0{_file_digest(path)}\0".encode())
    return h.hexdigest()


def _shard_fingerprint(shard: str) -> dict:
    st = os.stat(shard)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_part_meta(path: str | os.PathLike) -> dict | None:
    """The fingerprint a part file was written with (None if unreadable: it is then rescored)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[_META_KEY])
    except (OSError, KeyError, ValueError):
        return None


def score_shard(model, tokenizer, positive: int, shard: str, out: str, meta: dict, *,
                max_length: int, batch_tokens: int, window: int) -> dict:
    """Write `out` (parquet: id, score float32 or null) for every document of `shard`, atomically,
    with `meta` (the fingerprint) in the parquet schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cuda = next(model.parameters()).device.type == "cuda"
    schema = pa.schema([("id", pa.string()), ("score", pa.float32())],
                       metadata={_META_KEY: json.dumps(meta, sort_keys=True).encode()})
    counts = {"docs": 0, "tokens": 0, "padded_tokens": 0, **{f"skipped_{r}": 0 for r in SKIP_REASONS}}
    # Tensor cores want multiples of 8; on CPU any padding is wasted work.
    windows = iter_batches(shard, ["id", "text"], batch_size=window)  # read in the producer thread too
    producer = _Prefetch(_prepare(windows, tokenizer, max_length, batch_tokens, 8 if cuda else 1, cuda),
                         _PREFETCH_BATCHES)
    try:
        with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for win, scores in _score_windows(model, positive, producer):
                score = pa.array(scores, pa.float32(), mask=np.isnan(scores))
                writer.write_table(pa.table({"id": win.ids.to_arrow().cast(pa.string()), "score": score},
                                            schema=schema))
                counts["docs"] += win.ids.len()
                counts["tokens"] += win.tokens
                counts["padded_tokens"] += win.padded
                for reason, n in win.skip.drop_nulls().value_counts().iter_rows():
                    counts[f"skipped_{reason}"] += n
    finally:
        producer.close()
    return counts


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


def classify_shards(shards: list[str], names: list[str], model_dir: str, out_dir: str, parts_dir: str,
                    max_length: int, batch_tokens: int, window: int) -> dict:
    """Stage `corpus_classify`: score a group of shards; `out_dir/{name}.parquet` per shard.

    `names` are the shards' keys (same order as `shards`); finished shards are kept in `parts_dir`
    and reused by a rerun (see the module docstring)."""
    import torch

    shards, names = [str(s) for s in shards], list(names)
    if len(shards) != len(names):
        raise ValueError(f"classify: {len(shards)} shard paths but {len(names)} names")
    t0 = time.time()
    model, tokenizer, positive = load_classifier(model_dir)
    if next(model.parameters()).device.type == "cuda":
        # The CPU cores beside a GPU are idle: let the tokenizer thread use them (rayon). On CPU
        # they run the model, and the runtime's default (no tokenizer parallelism) stands.
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
    common = {"format": FORMAT, "model": model_fingerprint(model_dir), "max_length": max_length,
              "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}
    parts = Path(parts_dir)
    parts.mkdir(parents=True, exist_ok=True)
    totals: dict[str, int] = {}
    reused, scored = [], []
    for shard, name in zip(shards, names):
        part = parts / f"{name}.parquet"
        meta = {**common, "shard": name, **_shard_fingerprint(shard)}
        if part.is_file() and read_part_meta(part) == meta:
            reused.append(name)
            print(f"[classify] {name}: reusing {part} (scored by an earlier attempt)", flush=True)
            continue
        t_shard = time.time()
        counts = score_shard(model, tokenizer, positive, shard, str(part), meta, max_length=max_length,
                             batch_tokens=batch_tokens, window=window)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        scored.append(name)
        dt = time.time() - t_shard
        print(f"[classify] {name}: {counts['docs']} docs in {dt:.1f} s "
              f"({counts['docs'] / dt if dt else 0:.1f} docs/s), "
              f"{counts['padded_tokens'] - counts['tokens']} padding tokens; "
              f"skipped {({r: counts[f'skipped_{r}'] for r in SKIP_REASONS})}", flush=True)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name in names:
            _link_or_copy(parts / f"{name}.parquet", tmp / f"{name}.parquet")
    seconds = time.time() - t0
    summary = {"shards": len(names), "scored": scored, "reused": reused, **totals,
               "seconds": round(seconds, 2), "device": str(next(model.parameters()).device),
               "dtype": common["dtype"], "threads": torch.get_num_threads()}
    print(f"[classify] {summary}", flush=True)
    return summary
