"""Training plan (pure, no torch): accumulation, steps, checkpoint segments, log rows, FSDP arguments;
and the train-block errors the schema now owns (they used to be re-checked by the trainer)."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest

from medadapt.config import ConfigError, load, resolve
from medadapt.train.plan import gradient_accumulation, make_plan, window_mean_loss

ROOT = Path(__file__).resolve().parents[1]
CKPTS = {"count": 3, "first_fraction": 0.3}
SEQ = 32


@pytest.fixture(scope="module")
def paper():
    return load(ROOT / "config" / "config.yaml")


def test_plan_module_imports_no_torch():
    code = "import sys, medadapt.train.plan; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_gradient_accumulation_must_divide():
    assert gradient_accumulation(128, 4, 8) == 4
    with pytest.raises(ValueError, match=r"128 is not a multiple of per_device_batch_size 3 x world size 8 = 24"):
        gradient_accumulation(128, 3, 8)


@pytest.mark.parametrize("change,msg", [
    ({"epochs": 2}, r"train\.epochs"),
    ({"warmup": 0.1}, r"train.*'warmup' was unexpected"),
    ({"checkpoints": {"count": 3, "first_fraction": 1.5}}, r"train\.checkpoints\.first_fraction"),
    ({"warmup_ratio": 1.0}, r"train\.warmup_ratio"),  # transformers 5 reads a warmup >= 1 as a step count
])
def test_bad_train_block_is_named(paper, change, msg):
    config = copy.deepcopy(paper)
    config["train"] |= change
    with pytest.raises(ConfigError, match=msg):
        resolve(config)


def test_missing_train_key_takes_the_schema_default(paper):
    config = copy.deepcopy(paper)
    del config["train"]["learning_rate"], config["train"]["checkpoints"]["first_fraction"]
    resolve(config)
    assert config["train"]["learning_rate"] == 2e-5  # Table 1
    assert config["train"]["checkpoints"]["first_fraction"] == 0.005


def test_paper_plan_is_table1(paper):
    train = paper["train"]
    assert (train["effective_batch_size"], train["learning_rate"], train["weight_decay"], train["warmup_ratio"]) == \
        (128, 2e-5, 0.1, 0.1)
    assert (train["lr_scheduler"], train["epochs"], train["max_grad_norm"]) == ("cosine", 1, 1.0)
    # the paper's runs: bf16 on the GPUs, activations recomputed per decoder layer, ZeRO-3 sharding
    assert train["bf16"] and train["activation_checkpointing"] and train["sharding"]["reshard_after_forward"]
    # Qwen2.5-7B: 8 GPUs x 4 per device x 4 accumulation = 128
    plan = make_plan(blocks=128 * 1000 + 127, seq_len=4096, world_size=8, effective_batch_size=128,
                     per_device_batch_size=4, checkpoints={"count": 3, "first_fraction": 0.3})
    assert plan.total_steps == 1000 and plan.grad_accum == 4 and plan.steps[-1] == 1000
    assert plan.tokens(1000) == 1000 * 128 * 4096 and plan.names == ["c01", "c02", "c03"]
    # Qwen3-8B: 64 GCDs x 2 per device (families.qwen3.per_device_batch_size.8b) = 128, no accumulation
    plan = make_plan(128 * 5000, 2048, 64, 128, 2, train["checkpoints"])
    assert plan.grad_accum == 1 and len(plan.steps) == 18 and plan.steps[-1] == 5000


def test_plan_too_few_blocks_names_the_data():
    with pytest.raises(ValueError, match=r"packed/qwen: 11 blocks .* give 2 optimizer steps .* 3 checkpoints"):
        make_plan(11, SEQ, 1, 4, 2, CKPTS, "packed/qwen")


def test_segments_and_rows_of_a_small_plan():
    # 40 blocks / 4 = 10 steps; fractions 0.3, sqrt(0.3) = 0.548, 1 -> steps 3, 5, 10
    plan = make_plan(40, SEQ, 1, 4, 2, CKPTS)
    assert plan.grad_accum == 2 and plan.steps == [3, 5, 10]
    # segment k trains the steps after checkpoint k-1's up to checkpoint k's
    assert [plan.segment(c) for c in ("c01", "c02", "c03")] == [(0, 3), (3, 5), (5, 10)]
    with pytest.raises(ValueError, match=r"checkpoint 'c04' is not one of this run's \['c01', 'c02', 'c03'\]"):
        plan.segment("c04")
    rows = plan.rows(100, [3.0, 2.0, 1.5], family="tiny", size="s")
    assert rows[0] == {"family": "tiny", "size": "s", "ckpt": "c01", "step": 3, "fraction": 0.3,
                       "tokens": 3 * 4 * SEQ, "flops": 6.0 * 100 * 3 * 4 * SEQ, "train_loss": 3.0}
    assert [r["tokens"] for r in rows] == [384, 640, 1280] and rows[-1]["fraction"] == 1.0


def test_window_mean_loss_weights_each_log_by_its_steps():
    history = [{"step": 1, "loss": 4.0}, {"step": 3, "loss": 3.0}, {"step": 4, "loss": 1.0},
               {"step": 4, "train_loss": 9.9}]
    assert window_mean_loss(history, [1, 4]) == [4.0, pytest.approx((3.0 * 2 + 1.0) / 3)]

