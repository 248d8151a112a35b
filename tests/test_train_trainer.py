"""CPT trainer, one checkpoint segment per call: errors caught before the model loads (fast); a real
tiny run whose segment chain equals one uninterrupted run bit for bit; a run signalled and SIGKILLed
mid-segment that resumes exactly (same per-step losses, same blocks in the same order, same weights);
and two sharded (FSDP2) processes started by the cluster's launch command that match one process
(slow). The engine's own properties (sharding, world sizes, resharding, export, lock):
tests/test_train_engine.py."""
import copy
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from medadapt.cluster import Cluster
from medadapt.config import load, resolve
from medadapt.train import state as states
from medadapt.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("train_driver.py")
SEQ = 32
# A resolved `train:` block, as the workflow passes it (every key the schema defines or defaults).
TRAIN = {"effective_batch_size": 4, "per_device_batch_size": 2, "seq_len": SEQ, "learning_rate": 1e-3,
         "weight_decay": 0.1, "warmup_ratio": 0.1, "lr_scheduler": "cosine", "epochs": 1,
         "bf16": False, "max_grad_norm": 1.0, "activation_checkpointing": False, "compile": False,
         "tensorboard": False, "sharding": {"reshard_after_forward": True},
         "attn_implementation": None, "logging_steps": 1,
         "checkpoints": {"count": 3, "first_fraction": 0.3},
         "state": {"save_every_steps": 0, "save_every_minutes": 0, "keep": 2, "async_save": True,
                   "lock_wait_minutes": 0, "lock_stale_minutes": 30}}
RUN = {"seed": 0, "per_device_batch_size": 2, "world_size": 1, "device": "cpu", "family": "tiny", "size": "s"}
CKPTS = ["c01", "c02", "c03"]
N_DOCS = 74


def test_train_block_is_a_schema_train_block():
    """The keys the trainer reads are the schema's: a config with this block validates."""
    config = load(ROOT / "config" / "demo.yaml")
    config["train"] = copy.deepcopy(TRAIN)
    resolve(config)


@pytest.fixture(scope="module")
def packed_tiny(tmp_path_factory, tiny_tokenizer, german_texts):
    """Unique documents (so every packed block is distinct): 90 blocks of 32 tokens, 22 steps of 4;
    checkpoints at steps 7, 12, 22."""
    from medadapt.train.pack import pack

    root = tmp_path_factory.mktemp("cpt")
    texts = [f"Befund {i}: {german_texts[i % 8]} {german_texts[(3 * i + 1) % 8]}" for i in range(N_DOCS)]
    pl.DataFrame({"text": texts}).write_parquet(root / "corpus.parquet")
    pack(str(root / "corpus.parquet"), tiny_tokenizer, SEQ, str(root / "packed"), seed=0)
    return str(root / "packed")


def _segment(root, ckpt, model, packed, previous=None, train_block=TRAIN, **kw):
    return train(model=model, packed=packed, previous=previous, out_dir=str(root / f"raw-{ckpt}"),
                 state_dir=str(root / "state"), ckpt=ckpt, train=train_block, **(RUN | kw))


def test_packed_seq_len_must_match_train_block(tmp_path, tiny_lm, packed_tiny):
    with pytest.raises(ValueError, match=r"packed with seq_len 32, train.seq_len is 64"):
        _segment(tmp_path, "c01", tiny_lm, packed_tiny, train_block=TRAIN | {"seq_len": 64})


def test_world_size_checked_before_loading(tmp_path, monkeypatch, tiny_lm, packed_tiny):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(RuntimeError, match="planned 1 processes but 3 were launched"):
        _segment(tmp_path, "c01", tiny_lm, packed_tiny)
    with pytest.raises(ValueError, match="world size 3"):
        _segment(tmp_path, "c01", tiny_lm, packed_tiny, world_size=3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change,ckpt,msg", [
    ({}, "c04", r"checkpoint 'c04' is not one of this run's \['c01', 'c02', 'c03'\]"),
    ({"lr_scheduler": "polynomial"}, "c01", r"train.lr_scheduler: 'polynomial' is not one of"),
])
def test_config_errors_before_loading(tmp_path, tiny_lm, packed_tiny, change, ckpt, msg):
    with pytest.raises(ValueError, match=msg):
        _segment(tmp_path, ckpt, tiny_lm, packed_tiny, train_block=TRAIN | change)
    assert list(tmp_path.iterdir()) == []


def test_states_of_another_run_are_deleted_not_resumed(tmp_path, tiny_lm, packed_tiny, monkeypatch):
    """A changed config (another fingerprint) makes Snakemake retrain from segment 1: the old run's
    states are deleted, and training starts from the base model."""
    foreign = tmp_path / "state" / "checkpoint-3"
    foreign.mkdir(parents=True)
    (foreign / states.MARKER).write_text(json.dumps({"step": 3, "run": "0123456789abcdef"}))
    monkeypatch.setattr("medadapt.train.engine.load_model", lambda *a: (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.raises(RuntimeError, match="stop"):  # past the resume decision, before any training
        _segment(tmp_path, "c01", tiny_lm, packed_tiny)
    assert not foreign.exists()
    journal = (tmp_path / "state" / states.JOURNAL).read_text()
    assert "c01: deleted the state at step 3 of another run (fingerprint 0123456789abcdef; this run " in journal


def test_previous_checkpoint_of_another_run_is_an_error(tmp_path, tiny_lm, packed_tiny):
    previous = tmp_path / "raw-c01"
    previous.mkdir()
    (previous / "training.json").write_text(json.dumps({"run": "0123456789abcdef", "step": 7}))
    with pytest.raises(RuntimeError, match=r"raw-c01: trained by another run \(fingerprint 0123456789abcdef"):
        _segment(tmp_path, "c02", tiny_lm, packed_tiny, previous=str(previous))


def _drive(tmp_path, name, spec, launch=(sys.executable,), check=True):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run([*launch, str(DRIVER), str(path)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _spec(root, model, packed, segments, blocks=None, signal_at=None, train_block=TRAIN, **run):
    kwargs = {"model": model, "packed": packed, "state_dir": str(root / "state"), "train": train_block, **(RUN | run)}
    return {"segments": segments, "kwargs": kwargs, "out": str(root), "blocks": blocks, "signal_at": signal_at}


def _losses(ckpt_dir):
    """(step, loss) of every optimizer step up to this checkpoint, from its training state's history."""
    state = sorted(Path(ckpt_dir).parent.glob("state/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    history = json.loads((state / "trainer_state.json").read_text())["log_history"]
    return [(h["step"], h["loss"]) for h in history if "loss" in h]


def _weights(ckpt_dir):
    from safetensors.torch import load_file

    return load_file(Path(ckpt_dir) / "model.safetensors")


def _effective_blocks(path):
    """Per step, the blocks of the attempt that last trained it (a resumed attempt redoes the steps
    after its state, replacing what the killed attempt saw there)."""
    by_step: dict[int, list[str]] = {}
    attempt_of: dict[int, int] = {}
    attempt = 0
    for line in Path(path).read_text().splitlines():
        step, digest = line.split()
        if step == "start":
            attempt += 1
            continue
        step = int(step)
        if attempt_of.get(step) != attempt:
            by_step[step], attempt_of[step] = [], attempt
        by_step[step].append(digest)
    return by_step


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_lm, packed_tiny):
    """The reference: the three segments, nothing interrupted, every block recorded."""
    root = tmp_path_factory.mktemp("uninterrupted")
    _drive(root, "run", _spec(root, tiny_lm, packed_tiny, CKPTS, blocks=str(root / "blocks.txt")))
    return root


@pytest.mark.slow
def test_segment_chain_equals_one_uninterrupted_run(uninterrupted, tmp_path, tiny_lm, packed_tiny):
    """Three segments (three processes, each resuming the previous one's state) and one process
    training straight to the last checkpoint: the same per-step losses and the same weights, bit for bit."""
    import torch

    summary = _segment(tmp_path, "c03", tiny_lm, packed_tiny)  # no state: trains steps 1..22 at once
    assert summary["resumed_from_step"] == 0 and summary["step"] == 22
    assert _losses(uninterrupted / "raw-c03") == _losses(tmp_path / "raw-c03")
    chain, one = _weights(uninterrupted / "raw-c03"), _weights(tmp_path / "raw-c03")
    assert all(torch.equal(chain[k], one[k]) for k in chain)


@pytest.mark.slow
def test_checkpoint_records_and_run_log(uninterrupted, tmp_path, tiny_lm, packed_tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medadapt.train.records import write_log

    stats = json.loads((Path(packed_tiny) / "stats.json").read_text())
    assert stats["blocks"] == 90
    records = [json.loads((uninterrupted / f"raw-{c}" / "training.json").read_text()) for c in CKPTS]
    assert [(r["first_step"], r["step"]) for r in records] == [(0, 7), (7, 12), (12, 22)]
    assert [r["resumed_from_step"] for r in records] == [0, 7, 12]
    for c in CKPTS:  # loadable models for inference, no optimizer state beside them
        out = uninterrupted / f"raw-{c}"
        assert sorted(p.name for p in out.iterdir() if "token" not in p.name) == \
            ["chat_template.jinja", "config.json", "generation_config.json", "model.safetensors", "training.json"]
        assert AutoModelForCausalLM.from_pretrained(out).config.use_cache
        assert "<|im_start|>assistant" in AutoTokenizer.from_pretrained(out).apply_chat_template(
            [{"role": "user", "content": "Hallo"}], tokenize=False, add_generation_prompt=True)
    log, history = tmp_path / "checkpoints.csv", tmp_path / "history.json"
    write_log([str(uninterrupted / f"raw-{c}") for c in CKPTS], str(log), str(history))
    df = pl.read_csv(log)
    assert df.columns == ["family", "size", "ckpt", "step", "fraction", "tokens", "flops", "train_loss"]
    assert df["ckpt"].to_list() == CKPTS and df["step"].to_list() == [7, 12, 22]
    assert df["tokens"].to_list() == [s * 4 * SEQ for s in (7, 12, 22)] and df["fraction"][-1] == 1.0
    n = records[0]["non_embedding_params"]
    assert df["flops"].to_list() == [6.0 * n * t for t in df["tokens"].to_list()]
    # each row's loss: the mean of its window's per-step losses
    losses = dict(_losses(uninterrupted / "raw-c03"))
    windows = [range(1, 8), range(8, 13), range(13, 23)]
    assert df["train_loss"].to_list() == pytest.approx([sum(losses[s] for s in w) / len(w) for w in windows])
    logged = json.loads(history.read_text())
    assert [h["step"] for h in logged["log_history"] if "loss" in h] == list(range(1, 23))
    assert [s["resumed_from_step"] for s in logged["segments"]] == [0, 7, 12]


@pytest.mark.slow
def test_signalled_and_killed_run_resumes_exactly(uninterrupted, tmp_path, tiny_lm, packed_tiny):
    """After checkpoint c01 (step 7), segment c02 (steps 8..12) is SIGKILLed at the end of step 8,
    before any save: the rerun resumes from c01's own state. That attempt is stopped by SIGURG (the
    Slurm profiles' time-limit warning) at step 9: it saves its state at the end of step 10 and exits
    with an error. The next is SIGKILLed at step 11, and the last resumes from step 10's state.
    Checkpoint c01 is never touched; every per-step loss, every block and its order, and the weights
    of c02 and c03 equal the uninterrupted run's."""
    import torch
    from datasets import load_from_disk

    blocks = str(tmp_path / "blocks.txt")
    _drive(tmp_path, "c01", _spec(tmp_path, tiny_lm, packed_tiny, ["c01"], blocks))
    first = tmp_path / "raw-c01"
    stamp = (first.stat().st_ino, first.stat().st_mtime_ns)

    def attempt(name, step, signal, segments=("c02",)):
        return _drive(tmp_path, name, _spec(tmp_path, tiny_lm, packed_tiny, list(segments), blocks,
                                            {"step": step, "signal": signal} if signal else None), check=False)

    killed = attempt("kill-8", 8, "SIGKILL")
    assert killed.returncode == -9 and not (tmp_path / "raw-c02").exists()
    assert [s.step for s in states.states(tmp_path / "state")] == [7]  # c01's state, nothing newer
    urg = attempt("urg-9", 9, "SIGURG")
    assert urg.returncode == 1 and "TrainingInterrupted: train tiny/s c02: stopped by SIGURG at step 10 of 12" \
        in urg.stderr
    assert [s.step for s in states.states(tmp_path / "state")] == [7, 10]
    assert attempt("kill-11", 11, "SIGKILL").returncode == -9 and not (tmp_path / "raw-c02").exists()
    assert attempt("rest", None, None, ("c02", "c03")).returncode == 0

    assert (first.stat().st_ino, first.stat().st_mtime_ns) == stamp  # c01 survived, untouched
    assert json.loads((tmp_path / "raw-c02" / "training.json").read_text())["resumed_from_step"] == 10
    # a SIGKILLed job leaves its state lock behind; the next attempt takes it over (its pid is dead)
    journal = [re.sub(r"\(host \S+, pid \d+\): pid \d+ is not running on \S+$", "(dead pid)", line.split(": ", 1)[1])
               for line in (tmp_path / "state" / states.JOURNAL).read_text().splitlines()]
    assert journal == ["c01: steps 1..7, resuming from step 0", "state saved at step 7 (the segment's end)",
                       "c01: written at step 7",
                       "c02: steps 8..12, resuming from step 7",  # SIGKILLed at step 8
                       "took over the state lock of a job outside Slurm (dead pid)",
                       "c02: steps 8..12, resuming from step 7", "state saved at step 10 (SIGURG)",
                       "c02: stopped by SIGURG at step 10",
                       "c02: steps 8..12, resuming from step 10",  # SIGKILLed at step 11
                       "took over the state lock of a job outside Slurm (dead pid)",
                       "c02: steps 8..12, resuming from step 10", "state saved at step 12 (the segment's end)",
                       "c02: written at step 12",
                       "c03: steps 13..22, resuming from step 12", "state saved at step 22 (the segment's end)",
                       "c03: written at step 22"]
    got, want = _losses(tmp_path / "raw-c03"), _losses(uninterrupted / "raw-c03")
    assert [s for s, _ in got] == list(range(1, 23)) == [s for s, _ in want]
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in want], rel=1e-5)
    seen, reference = _effective_blocks(blocks), _effective_blocks(uninterrupted / "blocks.txt")
    assert seen == reference and sorted(seen) == list(range(1, 23))
    # every block of the epoch once (the 2 left over by 22 full batches of 4: never), by content
    order = Counter(b for s in sorted(reference) for b in reference[s])
    data = Counter(hashlib.md5(np.asarray(row, dtype="int64").tobytes()).hexdigest()
                   for row in load_from_disk(packed_tiny)["input_ids"])
    assert sum(order.values()) == 22 * 4 and sum(data.values()) == 90 and not order - data
    for ckpt in ("c02", "c03"):
        a, b = _weights(tmp_path / f"raw-{ckpt}"), _weights(uninterrupted / f"raw-{ckpt}")
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_two_process_fsdp_resumes_and_matches_single_process(uninterrupted, tmp_path, tiny_lm, packed_tiny):
    """Two CPU workers (gloo, FSDP2) started by the launch command a 2-GPU node gets, saving the state
    every 2 steps (the last 2 kept); rank 0 is SIGKILLed at step 11, torchrun takes the other worker
    down, and the rerun resumes from the newest published state. The trajectory is the single
    process's (same effective batch: 2 ranks x 2 instead of 1 process x 2 x 2 accumulation), up to
    float summation order."""
    import torch

    config = load(ROOT / "config" / "demo.yaml")
    config["platforms"]["nvidia"] = {"partition": None, "gpus_per_node": 2, "cpus_per_gpu": 1,
                                     "mem_mb_per_gpu": 0}
    config["families"]["tiny"] |= {"platform": "nvidia", "train_gpus": {"s": 2}}
    config["train"] |= {k: TRAIN[k] for k in ("effective_batch_size", "per_device_batch_size")}  # 2 ranks x 2
    resolve(config)
    launch = Cluster(config).launch_command("tiny", "s", sys.executable, str(DRIVER))
    assert launch == f"{sys.executable} -m torch.distributed.run --standalone --nproc-per-node=2 -- {DRIVER}"
    block = TRAIN | {"state": TRAIN["state"] | {"save_every_steps": 2}}
    launcher = shlex.split(launch)[:-1]
    spec = _spec(tmp_path, tiny_lm, packed_tiny, CKPTS, None, {"step": 11, "signal": "SIGKILL"}, block, world_size=2)
    killed = _drive(tmp_path, "ddp-kill", spec, launcher, check=False)
    assert killed.returncode != 0 and (tmp_path / "raw-c01").is_dir() and not (tmp_path / "raw-c02").exists()
    # keep: 2. Step 10's state is written in the background: published if both ranks had finished
    # writing it by the end of step 11, else still in staging (and removed by the rerun)
    saved = [s.step for s in states.states(tmp_path / "state")]
    assert saved in ([8, 10], [7, 8])  # 7: c01's
    _drive(tmp_path, "ddp-rest", _spec(tmp_path, tiny_lm, packed_tiny, ["c02", "c03"], None, None, block,
                                       world_size=2), launcher)
    record = json.loads((tmp_path / "raw-c02" / "training.json").read_text())
    assert (record["resumed_from_step"], record["world_size"], record["fsdp"]) == (saved[-1], 2, 2)
    assert record["engine"]["mesh"] == {"device_type": "cpu", "shape": [2]}
    got, want = _losses(tmp_path / "raw-c03"), _losses(uninterrupted / "raw-c03")
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in want], rel=1e-4)
    a, b = _weights(tmp_path / "raw-c03"), _weights(uninterrupted / "raw-c03")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)

