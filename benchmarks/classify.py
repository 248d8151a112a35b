"""Throughput of the corpus classify stage at the real XLM-RoBERTa-base shape, against a naive baseline.

Usage:
    .venv/bin/python benchmarks/classify.py [--docs 500] [--config config/config.yaml] [--threads N]
    .venv/bin/python benchmarks/classify.py --sweep [--batch-tokens 8192 16384 32768] [--windows 512 4096]

One run measures, on the same synthetic documents:
- ours: `medadapt.corpus.classify.score_shard`, the stage's per-shard path (parquet streaming, the
  tokenizer thread, length-sorted token-budget batches, inference_mode, SDPA; bf16 on a GPU), at
  corpus.classify of the config;
- naive: tokenise with padding to max_length, batches of 32 documents in file order, the same model;
- the machine's GEMM rate: a large fp32 matmul on CPU (bf16 on a GPU), best of several, measured
  between the timed chunks.
Chunks of documents alternate ours/naive in ABBA order, so load from other processes on a shared
machine hits both alike; compare ratios from one run. MFU counts the forward FLOPs of the
non-padding tokens only (2·N·L for the N encoder parameters, plus 4·layers·hidden·L² for attention
scores and their product with V), so padding is pure loss.

The model has random weights (throughput does not depend on them): hidden 768, 12 layers, 12 heads,
intermediate 3072, vocab 250002, 514 positions. Documents: token lengths log-uniform in [100, 2000]
(web document lengths are roughly log-normal; long ones are truncated to max_length), German words
from the demo corpus; the tokenizer is a BPE trained on that text (the real SentencePiece tokenizer
is not available offline; tokenisation is a small share of the cost either way).

--sweep (for a machine with a GPU): ours only, over batch-token budgets and windows, as a table.
--shapes: forward passes of fixed batch shapes (documents × tokens, no padding), best of --repeat,
as a share of the GEMM rate: how the encoder's efficiency depends on the tokens per batch.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

XLMR_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "vocab_size": 250002, "max_position_embeddings": 514}
NAIVE_BATCH = 32
# FineWeb-2 German (deu_Latn) as the paper uses it: 640 GB. Documents: FineWeb2-HQ lists 43.1M German
# documents as FineWeb-2's top 10 % by construction, so about 431M in all (about 1.5 kB of parquet
# per document). An estimate, stated in RESULTS.md.
FINEWEB_DE_BYTES = 640e9
FINEWEB_DE_DOCS = 431e6
# NVIDIA H100 SXM, dense bf16 tensor-core peak from the data sheet (989 TFLOP/s; 1979 is with sparsity).
H100_BF16_DENSE = 989e12


def build_model(workdir: Path, seed: int) -> str:
    """XLM-R-base-shaped classifier with random weights + a BPE tokenizer on the demo text, saved
    like the classifier stage saves its model (so the stage's loader reads it)."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    from medadapt.models.tiny import build_classifier, read_texts

    texts = read_texts(sorted(glob.glob(str(ROOT / "resources/demo/corpus/shard-*.jsonl"))))
    tok_dir = workdir / "tokenizer"
    build_classifier(texts, str(tok_dir), {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 1},
                     vocab_size=8000)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    cfg = XLMRobertaConfig(**XLMR_BASE, pad_token_id=tok.pad_token_id, num_labels=2,
                           id2label={0: "not_medical", 1: "medical"}, label2id={"not_medical": 0, "medical": 1})
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(cfg)
    out = workdir / "model"
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return str(out)


def synthetic_docs(tokenizer, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """n German texts whose token counts are log-uniform in [100, 2000]; returns (texts, targets)."""
    from medadapt.models.tiny import read_texts

    words = " ".join(read_texts(sorted(glob.glob(str(ROOT / "resources/demo/corpus/shard-*.jsonl"))))).split()
    cost = np.array([len(ids) for ids in tokenizer(words, add_special_tokens=False)["input_ids"]])
    rng = np.random.default_rng(seed)
    targets = np.exp(rng.uniform(math.log(100), math.log(2000), n)).astype(int)
    texts = []
    for target in targets:
        picks, total = [], 0
        while total < target:  # per-word costs are an estimate: check on the joined text
            while total < target:
                i = int(rng.integers(len(words)))
                picks.append(words[i])
                total += cost[i]
            total = len(tokenizer.backend_tokenizer.encode(" ".join(picks)).ids)  # untruncated, with <s> </s>
        texts.append(" ".join(picks))
    return texts, targets


def forward_flops(lengths, n_params: int, layers: int, hidden: int) -> float:
    L = np.asarray(lengths, dtype=np.float64)
    return float((2 * n_params * L + 4 * layers * hidden * L ** 2).sum())


def gemm_rate(device: str, n: int = 4096, repeat: int = 3) -> float:
    """FLOP/s of the best of `repeat` n×n matmuls (fp32 on CPU, bf16 on a GPU)."""
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def run_ours(model, tokenizer, positive, shard: str, out: str, settings: dict) -> tuple[float, dict]:
    from medadapt.corpus.classify import score_shard

    t = time.perf_counter()
    counts = score_shard(model, tokenizer, positive, shard, out, {"benchmark": True}, **settings)
    return time.perf_counter() - t, counts


def run_naive(model, tokenizer, positive, texts: list[str], max_length: int) -> float:
    """Fixed padding to max_length, fixed batches of 32 in file order, no sorting, no overlap."""
    import torch

    device = next(model.parameters()).device
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), NAIVE_BATCH):
            enc = tokenizer(texts[i:i + NAIVE_BATCH], padding="max_length", truncation=True,
                            max_length=max_length, return_tensors="pt").to(device)
            torch.softmax(model(**enc).logits.float(), dim=-1)[:, positive].cpu()
    return time.perf_counter() - t


def write_shard(path: Path, texts: list[str], offset: int) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [f"d{offset + i}" for i in range(len(texts))], "text": texts}), path)
    return str(path)


def projection(docs_per_s: float, threads: int, mfu: float, flops_per_doc: dict[str, float]) -> list[dict]:
    rows = []
    for mix, fpd in flops_per_doc.items():
        rows.append({"length mix": mix, "documents": FINEWEB_DE_DOCS,
                     "cpu_core_hours": FINEWEB_DE_DOCS * fpd / (docs_per_s * flops_per_doc["benchmark mix"] / threads) / 3600,
                     "h100_hours_at_cpu_mfu": FINEWEB_DE_DOCS * fpd / (H100_BF16_DENSE * mfu) / 3600,
                     "h100_hours_at_100pct": FINEWEB_DE_DOCS * fpd / H100_BF16_DENSE / 3600})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--chunks", type=int, default=2, help="ABBA-alternated chunks of documents")
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true", help="ours only, over --batch-tokens × --windows")
    ap.add_argument("--batch-tokens", type=int, nargs="+", default=[4096, 8192, 16384, 32768, 65536])
    ap.add_argument("--windows", type=int, nargs="+", default=[512, 4096])
    ap.add_argument("--shapes", action="store_true", help="efficiency of fixed batch shapes (see above)")
    ap.add_argument("--repeat", type=int, default=4, help="--shapes: passes per shape (best counts)")
    ap.add_argument("--json", help="also write the results as JSON here")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    from medadapt.config import resolve_block
    from medadapt.corpus.classify import load_classifier

    block = yaml.safe_load(Path(args.config).read_text())["corpus"]
    corpus = resolve_block("corpus", block, args.config)
    settings = {k: corpus["classify"][k] for k in ("max_length", "batch_tokens", "window")}
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as tmp:
        work = Path(tmp)
        model_dir = build_model(work, args.seed)
        model, tokenizer, positive = load_classifier(model_dir)
        device = next(model.parameters()).device.type
        enc = model.roberta.encoder
        n_params = sum(p.numel() for p in enc.parameters())
        layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
        texts, _ = synthetic_docs(tokenizer, args.docs, args.seed)
        from medadapt.corpus.classify import clip_chars

        lengths = np.array([len(e) for e in tokenizer(clip_chars(texts, settings["max_length"]), truncation=True,
                                                       max_length=settings["max_length"])["input_ids"]])
        useful = forward_flops(lengths, n_params, layers, hidden)
        print(f"device {device}, torch threads {torch.get_num_threads()}, {len(texts)} documents, real tokens: "
              f"mean {lengths.mean():.0f}, median {np.median(lengths):.0f}, {np.mean(lengths == settings['max_length']):.0%} "
              f"truncated to {settings['max_length']}; encoder parameters {n_params / 1e6:.1f}M")
        shard = write_shard(work / "all.parquet", texts, 0)
        peaks = [gemm_rate(device)]
        if args.shapes:
            shapes(model, n_params, layers, hidden, args.repeat, peaks)
            return
        if args.sweep:
            sweep(model, tokenizer, positive, shard, work, settings, args, lengths, useful, peaks)
            return
        bounds = np.linspace(0, len(texts), args.chunks + 1).astype(int)
        t_ours = t_naive = 0.0
        counts_total = {"tokens": 0, "padded_tokens": 0}
        for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            chunk = write_shard(work / f"chunk{k}.parquet", texts[lo:hi], lo)
            order = ("ours", "naive") if k % 2 == 0 else ("naive", "ours")
            for which in order:
                if which == "ours":
                    dt, counts = run_ours(model, tokenizer, positive, chunk, str(work / f"s{k}.parquet"), settings)
                    t_ours += dt
                    for key in counts_total:
                        counts_total[key] += counts[key]
                else:
                    t_naive += run_naive(model, tokenizer, positive, texts[lo:hi], settings["max_length"])
            peaks.append(gemm_rate(device))
            print(f"  chunk {k + 1}/{args.chunks}: ours {t_ours:.1f} s, naive {t_naive:.1f} s so far", flush=True)
        peak = max(peaks)
        n = len(texts)
        res = {
            "device": device, "threads": torch.get_num_threads(), "docs": n, "settings": settings,
            "mean_real_tokens": float(lengths.mean()), "gemm_flops_best": peak,
            "gemm_flops_all": peaks,
            "ours": {"seconds": t_ours, "docs_per_s": n / t_ours, "real_tokens_per_s": lengths.sum() / t_ours,
                     "padding_share": 1 - counts_total["tokens"] / counts_total["padded_tokens"],
                     "mfu": useful / t_ours / peak},
            "naive": {"seconds": t_naive, "docs_per_s": n / t_naive, "real_tokens_per_s": lengths.sum() / t_naive,
                      "padding_share": 1 - lengths.sum() / (n * settings["max_length"]),
                      "mfu": useful / t_naive / peak},
        }
        res["speedup"] = t_naive / t_ours
        full = forward_flops([settings["max_length"]], n_params, layers, hidden)
        res["projection"] = projection(res["ours"]["docs_per_s"], torch.get_num_threads(), res["ours"]["mfu"],
                                       {"benchmark mix": useful / n, f"all {settings['max_length']} tokens": full})
        report(res)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2, default=float) + "\n")


def report(res: dict) -> None:
    print(f"\nGEMM rate (best of {len(res['gemm_flops_all'])} probes): {res['gemm_flops_best'] / 1e9:.1f} GFLOP/s "
          f"(median {statistics.median(res['gemm_flops_all']) / 1e9:.1f})")
    print(f"{'path':8s} {'seconds':>8s} {'docs/s':>8s} {'real tok/s':>11s} {'padding':>8s} {'MFU':>6s}")
    for name in ("ours", "naive"):
        r = res[name]
        print(f"{name:8s} {r['seconds']:8.1f} {r['docs_per_s']:8.2f} {r['real_tokens_per_s']:11.0f} "
              f"{r['padding_share']:8.1%} {r['mfu']:6.1%}")
    print(f"speedup ours / naive: {res['speedup']:.2f}x  (settings {res['settings']})")
    print(f"\nProjection for FineWeb-2 German, 640 GB ≈ {FINEWEB_DE_DOCS / 1e6:.0f}M documents (estimate):")
    for p in res["projection"]:
        print(f"  {p['length mix']:>16s}: {p['cpu_core_hours']:12,.0f} CPU core-hours (this machine's cores); "
              f"H100 bf16 at {H100_BF16_DENSE / 1e12:.0f} TFLOP/s: {p['h100_hours_at_cpu_mfu']:8,.1f} GPU-hours at the "
              f"measured MFU, {p['h100_hours_at_100pct']:6,.1f} at 100 %")


def shapes(model, n_params: int, layers: int, hidden: int, repeat: int, peaks: list[float]) -> None:
    import torch

    device = next(model.parameters()).device
    sizes = [(1, 512), (4, 512), (8, 512), (16, 512), (32, 512), (64, 512), (32, 128), (64, 128), (128, 128)]
    best = dict.fromkeys(sizes, math.inf)
    for _ in range(repeat):  # round robin, so a busy spell of the machine hits every shape alike
        for b, n in sizes:
            ids = torch.randint(5, 1000, (b, n), device=device)
            with torch.inference_mode():
                t = time.perf_counter()
                model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.cpu()
                best[(b, n)] = min(best[(b, n)], time.perf_counter() - t)
        peaks.append(gemm_rate(device.type))
    peak = max(peaks)
    print(f"GEMM rate (best): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'docs':>5s} {'tokens':>7s} {'per batch':>10s} {'seconds':>8s} {'of GEMM rate':>13s}")
    for (b, n), dt in best.items():
        print(f"{b:5d} {n:7d} {b * n:10d} {dt:8.2f} {forward_flops([n] * b, n_params, layers, hidden) / dt / peak:13.0%}")


def sweep(model, tokenizer, positive, shard, work, settings, args, lengths, useful, peaks) -> None:
    rows = []
    for window in args.windows:
        for budget in args.batch_tokens:
            s = {**settings, "batch_tokens": budget, "window": window}
            dt, counts = run_ours(model, tokenizer, positive, shard, str(work / "sweep.parquet"), s)
            peaks.append(gemm_rate(next(model.parameters()).device.type))
            rows.append((window, budget, len(lengths) / dt, lengths.sum() / dt,
                         1 - counts["tokens"] / counts["padded_tokens"], useful / dt))
    peak = max(peaks)
    print(f"GEMM rate (best): {peak / 1e12:.2f} TFLOP/s")
    print(f"{'window':>7s} {'batch_tokens':>13s} {'docs/s':>9s} {'real tok/s':>11s} {'padding':>8s} {'MFU':>6s}")
    for window, budget, dps, tps, pad, fl in rows:
        print(f"{window:7d} {budget:13d} {dps:9.1f} {tps:11.0f} {pad:8.1%} {fl / peak:6.1%}")


if __name__ == "__main__":
    main()
