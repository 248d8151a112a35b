"""Pack a text corpus into fixed-length token blocks for causal-LM training.

Documents are shuffled, tokenized with the family's source-model (fast) tokenizer, joined with the
tokenizer's EOS after every document, concatenated globally and cut into blocks of `seq_len`
(the remainder is dropped), as Axolotl and HF's run_clm do for pre-training data. Chunking is
global (not per map batch), so blocks == tokens // seq_len exactly.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from medadapt.io import atomic_path, write_json


def _tokenize_fn(tokenizer, bos_id: int | None, eos_id: int):
    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        head = [bos_id] if bos_id is not None else []
        return {"input_ids": [head + doc + [eos_id] for doc in ids]}
    return tokenize


def _blocks(tokenized, seq_len: int):
    """Yield consecutive seq_len blocks of the concatenated token stream (arrow batches, no copies per doc)."""
    carry = np.empty(0, dtype=np.int32)
    for batch in tokenized.with_format("arrow").iter(batch_size=2000):
        flat = batch.column("input_ids").combine_chunks().flatten().to_numpy()
        stream = np.concatenate([carry, flat.astype(np.int32, copy=False)])
        full = len(stream) // seq_len * seq_len
        for block in stream[:full].reshape(-1, seq_len):
            yield {"input_ids": block}
        carry = stream[full:]


def _load_corpus(corpus: str | list[str], cache_dir: str):
    from datasets import Dataset

    files = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"corpus: {f} does not exist")
    import pyarrow.parquet as pq

    if sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 0:
        raise ValueError(f"corpus {files}: no documents (did the filter keep any? check corpus.threshold "
                         "against tables/corpus_stats.csv)")
    ds = Dataset.from_parquet([str(f) for f in files], cache_dir=cache_dir)
    if "text" not in ds.column_names:
        raise ValueError(f"corpus {files}: no 'text' column (found {ds.column_names})")
    return ds.select_columns(["text"])


def pack(corpus: str | list[str], tokenizer_dir: str, seq_len: int, out_dir: str, *, seed: int,
         threads: int = 1) -> dict:
    """Tokenize `corpus` (parquet, column `text`) and save blocks of `seq_len` (train.seq_len) token
    ids to `out_dir`; documents are shuffled with `seed` first; `threads` tokenizer processes.

    Writes `out_dir` (datasets save_to_disk, column input_ids) and `out_dir/stats.json`.
    """
    from datasets import Dataset, Features, Sequence, Value
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not tokenizer.is_fast:
        raise ValueError(f"{tokenizer_dir}: a fast tokenizer (tokenizer.json) is required")
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{tokenizer_dir}: the tokenizer has no eos_token to separate documents")
    # Intermediate caches live beside the output (same filesystem, often large) and are removed after.
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    cache = tempfile.mkdtemp(prefix=f".{Path(out_dir).name}.cache.", dir=Path(out_dir).parent)
    try:
        docs = _load_corpus(corpus, cache).shuffle(seed=seed)
        tokenized = docs.map(
            _tokenize_fn(tokenizer, tokenizer.bos_token_id, tokenizer.eos_token_id),
            batched=True, num_proc=_procs(threads, len(docs)),
            remove_columns=["text"], features=Features({"input_ids": Sequence(Value("int32"))}),
            desc="tokenize")
        n_tokens = _count_tokens(tokenized)
        if n_tokens < seq_len:
            raise ValueError(f"corpus {corpus}: {n_tokens} tokens give no block of {seq_len} tokens")
        features = Features({"input_ids": Sequence(Value("int32"), length=seq_len)})
        packed = Dataset.from_generator(_blocks, gen_kwargs={"tokenized": tokenized, "seq_len": seq_len},
                                        features=features, cache_dir=cache)
        if len(packed) != n_tokens // seq_len:  # the global chunking invariant
            raise RuntimeError(f"packed {len(packed)} blocks, expected {n_tokens} // {seq_len}")
        stats = {"docs": len(docs), "tokens": n_tokens, "blocks": len(packed), "seq_len": seq_len,
                 "tokenizer": str(tokenizer_dir), "vocab_size": len(tokenizer),
                 "eos_token": tokenizer.eos_token, "bos_token": tokenizer.bos_token, "seed": seed}
        with atomic_path(out_dir) as tmp:
            packed.save_to_disk(str(tmp), num_proc=_procs(threads, len(packed)))
            write_json(tmp / "stats.json", stats)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return stats


def _procs(threads: int, rows: int) -> int | None:
    """datasets starts a (spawn) pool for any num_proc >= 1; None keeps small or serial work in-process."""
    n = min(int(threads or 1), rows)
    return n if n > 1 else None


def _count_tokens(tokenized) -> int:
    return int(sum(len(b.column("input_ids").combine_chunks().flatten())
                   for b in tokenized.with_format("arrow").iter(batch_size=10_000)))


def read_stats(packed_dir: str) -> dict:
    path = Path(packed_dir) / "stats.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {packed_dir} is not a packed dataset (run the pack stage)")
    return json.loads(path.read_text())
