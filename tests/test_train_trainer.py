"""CPT trainer: errors caught before the model loads (fast), a real tiny training run with 3
checkpoints, and the same run as 2 DDP processes started by the cluster's launch command (slow)."""
import copy
import json
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from medadapt.cluster import Cluster
from medadapt.config import load, resolve
from medadapt.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
SEQ = 32
# A resolved `train:` block, as the workflow passes it (every key the schema defines or defaults).
TRAIN = {"effective_batch_size": 4, "per_device_batch_size": 2, "seq_len": SEQ, "learning_rate": 1e-3,
         "weight_decay": 0.1, "warmup_ratio": 0.1, "lr_scheduler": "cosine", "optim": "adamw_torch", "epochs": 1,
         "bf16": False, "gradient_checkpointing": False, "fsdp": "", "fsdp_config": None,
         "attn_implementation": None, "logging_steps": 1, "dataloader_num_workers": 0,
         "checkpoints": {"count": 3, "first_fraction": 0.3}}
RUN = {"seed": 0, "per_device_batch_size": 2, "family": "tiny", "size": "s"}


def test_train_block_is_a_schema_train_block():
    """The keys the trainer reads are the schema's: a config with this block validates."""
    config = load(ROOT / "config" / "demo.yaml")
    config["train"] = copy.deepcopy(TRAIN)
    resolve(config)


def _run(packed, root, train_block=TRAIN, n=3, **kw):
    return train(model=kw.pop("model"), packed=packed, ckpts=[str(root / f"c{i}") for i in range(n)],
                 log_csv=str(root / "log.csv"), train=train_block, **(RUN | kw))


def test_packed_seq_len_must_match_train_block(tmp_path, tiny_lm, packed_tiny):
    with pytest.raises(ValueError, match=r"packed with seq_len 32, train.seq_len is 64"):
        _run(packed_tiny, tmp_path, TRAIN | {"seq_len": 64}, model=tiny_lm)


def test_world_size_checked_before_loading(tmp_path, monkeypatch, tiny_lm, packed_tiny):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="world size 3"):
        _run(packed_tiny, tmp_path, model=tiny_lm)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change,n,msg", [
    ({}, 2, r"2 checkpoint directories for train.checkpoints.count 3"),
    ({"fsdp": "full_shard", "fsdp_config": {"state_dict_type": "SHARDED_STATE_DICT"}}, 3, "FULL_STATE_DICT"),
])
def test_config_errors_before_loading(tmp_path, tiny_lm, packed_tiny, change, n, msg):
    with pytest.raises(ValueError, match=msg):
        _run(packed_tiny, tmp_path, TRAIN | change, n, model=tiny_lm)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def packed_tiny(tmp_path_factory, german_texts, tiny_tokenizer):
    from medadapt.train.pack import pack

    root = tmp_path_factory.mktemp("cpt")
    pl.DataFrame({"text": german_texts}).write_parquet(root / "corpus.parquet")
    pack(str(root / "corpus.parquet"), tiny_tokenizer, SEQ, str(root / "packed"), seed=0)
    return str(root / "packed")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_lm, packed_tiny):
    root = tmp_path_factory.mktemp("trained")
    outs = [str(root / "models" / f"raw-c{i:02d}") for i in (1, 2, 3)]
    log = root / "train" / "checkpoints.csv"
    # the paper's settings where they apply on a CPU: FSDP is skipped for one process, bf16 without a GPU
    block = TRAIN | {"fsdp": "full_shard auto_wrap", "bf16": True}
    summary = train(tiny_lm, packed_tiny, outs, str(log), block, **RUN)
    return root, outs, log, summary


@pytest.mark.slow
def test_train_tiny_lm_three_checkpoints(trained, tiny_lm, packed_tiny):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, outs, log, summary = trained
    stats = json.loads((Path(packed_tiny) / "stats.json").read_text())
    total = stats["blocks"] // 4
    source = load_file(Path(tiny_lm) / "model.safetensors")
    weights = []
    for out in outs:
        model = AutoModelForCausalLM.from_pretrained(out)
        assert model.config.use_cache  # saved for inference, whatever training used
        weights.append(model.state_dict()["model.layers.0.mlp.up_proj.weight"])
        tok = AutoTokenizer.from_pretrained(out)
        assert "<|im_start|>assistant" in tok.apply_chat_template(
            [{"role": "user", "content": "Hallo"}], tokenize=False, add_generation_prompt=True)
    # (first_fraction 0.3 puts c01 at step 2: HF's warmup gives the very first step LR 0)
    for i, w in enumerate(weights):
        assert not torch.equal(w, source["model.layers.0.mlp.up_proj.weight"])
        assert all(not torch.equal(w, other) for other in weights[i + 1:])
    assert sorted(p.name for p in (root / "models").iterdir()) == ["raw-c01", "raw-c02", "raw-c03"]
    assert (summary["bf16"], summary["fsdp"]) == (False, False)  # no GPU, one process

    df = pl.read_csv(log)
    assert df.columns == ["family", "size", "ckpt", "step", "fraction", "tokens", "flops", "train_loss"]
    assert df["family"].to_list() == ["tiny"] * 3 and df["size"].to_list() == ["s"] * 3
    steps, tokens = df["step"].to_list(), df["tokens"].to_list()
    assert df["ckpt"].to_list() == ["c01", "c02", "c03"]
    assert all(b > a for a, b in zip(steps, steps[1:])) and all(b > a for a, b in zip(tokens, tokens[1:]))
    assert steps[-1] == total == summary["plan"]["total_steps"] and df["fraction"][-1] == 1.0
    assert tokens == [s * 4 * SEQ for s in steps]
    assert df["flops"].to_list() == [6.0 * summary["non_embedding_params"] * t for t in tokens]
    assert df["train_loss"].is_finite().all()
    history = json.loads(Path(f"{log}.history.json").read_text())
    assert {h["step"] for h in history["log_history"] if "loss" in h} >= set(steps)
    assert history["train"]["fsdp"] == "full_shard auto_wrap" and history["seed"] == 0
    assert sorted(p.name for p in log.parent.iterdir()) == ["checkpoints.csv", "checkpoints.csv.history.json"]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path, trained, tiny_lm, packed_tiny):
    """Two CPU workers (gloo) started by the launch command a 2-GPU node gets: rank 0 saves, and the
    trajectory does not depend on the world size (same effective batch: 2 ranks x 2 instead of
    1 process x 2 x 2 accumulation)."""
    config = load(ROOT / "config" / "demo.yaml")
    config["platforms"]["nvidia"] = {"partition": None, "gpus_per_node": 2, "cpus_per_gpu": 1, "mem_mb_per_gpu": 0}
    config["families"]["tiny"] |= {"platform": "nvidia", "train_gpus": {"s": 2}}
    cluster = Cluster(config)
    launch = cluster.launch_command("tiny", "s", sys.executable)
    assert launch == f"{sys.executable} -m torch.distributed.run --standalone --nproc-per-node=2"

    outs = [str(tmp_path / f"raw-c{i:02d}") for i in (1, 2, 3)]
    log = tmp_path / "checkpoints.csv"
    # the workflow's shell route: <launch> medadapt_entry.py stage train --job JSON (each worker)
    job = {"input": {"model": tiny_lm, "packed": packed_tiny}, "output": {"log_csv": str(log), "ckpts": outs},
           "params": {"train": TRAIN, **RUN}, "threads": cluster.omp_threads("tiny", "s", 2)}
    entry = ROOT / "workflow" / "scripts" / "medadapt_entry.py"
    proc = subprocess.run([*shlex.split(launch), str(entry), "stage", "train", "--job", json.dumps(job),
                           "--log-file", str(tmp_path / "train.log")], capture_output=True, text=True, timeout=300)
    log_text = (tmp_path / "train.log").read_text() if (tmp_path / "train.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log_text[-3000:]
    assert json.loads((tmp_path / "checkpoints.csv.provenance.json").read_text())["threads"] == 1
    ddp, single = pl.read_csv(log), pl.read_csv(trained[2])
    assert ddp.drop("train_loss").equals(single.drop("train_loss"))
    assert ddp["train_loss"].to_list() == pytest.approx(single["train_loss"].to_list(), rel=1e-4)
    assert json.loads(Path(f"{log}.history.json").read_text())["plan"]["world_size"] == 2
    assert all((Path(o) / "model.safetensors").is_file() for o in outs)


def test_saved_weights_cast_to_bf16_still_load(tmp_path, tiny_lm):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from medadapt.train.trainer import cast_saved_weights

    model_dir = tmp_path / "ckpt"
    shutil.copytree(tiny_lm, model_dir)
    before = AutoModelForCausalLM.from_pretrained(tiny_lm)
    cast_saved_weights(model_dir, "bfloat16")
    after = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    assert next(after.parameters()).dtype == torch.bfloat16
    w0 = before.model.layers[0].mlp.up_proj.weight
    w1 = after.model.layers[0].mlp.up_proj.weight
    assert torch.allclose(w0, w1.float(), rtol=1e-2, atol=1e-3) and not torch.equal(w0, w1.float())
