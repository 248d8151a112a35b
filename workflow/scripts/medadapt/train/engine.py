"""The training engine: FSDP2 at every world size, DCP states, the same code on CPU (gloo) and GPU.

One process per device. Every run is sharded - a mesh of one process included - so the demo on one
CPU, the tests on 1, 2 or 4 gloo processes and a 64-GCD run execute the same lines. The trainer
runs in named phases (`init_distributed`, `build_model`, `build_optimizer`, `restore`,
`train_step`, `after_step`, `save`, `export`); each component has one small config dataclass built
from the `train:` block (`EngineConfig.from_train`).

- **Sharding.** `fully_shard` each decoder layer (`model.model.layers`), then the root, which holds
  the input embedding, the final norm and the LM head: tied embeddings stay one parameter in one
  FSDP unit. Activation checkpointing (per decoder layer) and `torch.compile` (per layer) are applied
  before sharding. bf16 mixed precision (params bf16, gradient reduction fp32) on GPUs; fp32 on CPU.
- **Data.** A seeded permutation of the packed blocks; step s trains the blocks perm[s*E:(s+1)*E]
  (E the effective batch), whatever the world size: rank r's micro-batch m is the slice
  (m*W + r)*B .. +B. Each micro loss is scaled by 1/accumulation and FSDP averages gradients over
  ranks, so the gradient is the mean over the global batch at any world size.
- **States** (`Checkpointer`): DCP, each rank writes its shard of the model and optimizer
  (`dcp.async_save` on a gloo group of its own: training blocks only while the state is staged);
  the scheduler, step, data position and log history in `trainer_state.json` (rank 0), the RNG
  states in `rng-rank<r>.pt`. A state is published (marker file, then one rename out of staging)
  when every rank's write is done. DCP reshards on load, so a state resumes at another world size.
- **Export** (`export_hf`): the model as a Hugging Face directory, gathered one tensor at a time
  (`DTensor.full_tensor`), rank 0 writing safetensors shards as they fill.
"""
from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from medadapt.io import atomic_path
from medadapt.train import state as states
from medadapt.train.compute import mfu

DCP_DIR = "dcp"
TRAINER_STATE = "trainer_state.json"
RNG = "rng-rank{rank}.pt"
SCHEDULES = ("cosine", "linear", "constant_with_warmup", "cosine_with_min_lr")  # transformers' names
MAX_SHARD_BYTES = 5 * 1024 ** 3  # safetensors shard size of an export (save_pretrained's default)


# ---------------------------------------------------------------------------------------------- config

@dataclass(frozen=True)
class ModelConfig:
    path: str
    attn_implementation: str | None = None
    activation_checkpointing: bool = False
    compile: bool = False


@dataclass(frozen=True)
class ShardingConfig:
    reshard_after_forward: bool = True  # ZeRO-3; False keeps layers gathered between forward and backward
    bf16: bool = False                  # requested; applied only on GPUs


@dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = 2e-5
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    betas: tuple[float, float] = (0.9, 0.999)  # the Trainer's AdamW defaults
    eps: float = 1e-8


@dataclass(frozen=True)
class SchedulerConfig:
    name: str = "cosine"
    warmup_ratio: float = 0.1

    def warmup_steps(self, total: int) -> int:
        return math.ceil(self.warmup_ratio * total)  # as the Trainer rounds it


@dataclass(frozen=True)
class CheckpointConfig:
    save_every_steps: int = 0
    save_every_minutes: float = 60.0
    keep: int = 2
    async_save: bool = True


@dataclass(frozen=True)
class MetricsConfig:
    logging_steps: int = 1
    tensorboard: bool = False
    peak_tflops: float | None = None  # per device, for MFU; None (CPUs) - no MFU


@dataclass(frozen=True)
class EngineConfig:
    model: ModelConfig
    sharding: ShardingConfig = field(default_factory=ShardingConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    seed: int = 0

    @classmethod
    def from_train(cls, train: dict, model: str, seed: int, peak_tflops: float | None = None) -> "EngineConfig":
        """From the resolved `train:` block (config/schema.yaml); errors name the key."""
        st = train["state"]
        if train["lr_scheduler"] not in SCHEDULES:
            raise ValueError(f"train.lr_scheduler: {train['lr_scheduler']!r} is not one of {list(SCHEDULES)}")
        return cls(
            model=ModelConfig(model, train.get("attn_implementation"), bool(train["activation_checkpointing"]),
                              bool(train["compile"])),
            sharding=ShardingConfig(bool(train["sharding"]["reshard_after_forward"]), bool(train["bf16"])),
            optimizer=OptimizerConfig(float(train["learning_rate"]), float(train["weight_decay"]),
                                      float(train["max_grad_norm"])),
            scheduler=SchedulerConfig(train["lr_scheduler"], float(train["warmup_ratio"])),
            checkpoint=CheckpointConfig(int(st["save_every_steps"]), float(st["save_every_minutes"]),
                                        int(st["keep"]), bool(st["async_save"])),
            metrics=MetricsConfig(int(train["logging_steps"]), bool(train["tensorboard"]),
                                  float(peak_tflops) if peak_tflops else None),
            seed=seed)


# ------------------------------------------------------------------------------------------- processes

@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    device: object          # torch.device
    mesh: object            # DeviceMesh over all ranks
    ckpt_group: object      # gloo group for the asynchronous saves (never the training collectives')

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        import torch.distributed as dist
        dist.barrier(group=self.ckpt_group)

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true if true on any rank (saves are collective: all ranks must agree)."""
        import torch
        import torch.distributed as dist
        t = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())


_GROUPS: dict = {}


def init_distributed(device: str) -> Dist:
    """The process group (nccl on GPUs - ROCm's RCCL answers to that name -, gloo on CPUs), even for
    one process, and a one-dimensional device mesh over it. Launched by torchrun: env:// rendezvous;
    otherwise (one process: tests, the demo) a file store in a private temporary directory. The group
    lives as long as the process: segments run one after another in one process reuse it."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    gpu = device == "cuda"
    if gpu:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        backend = "nccl" if gpu else "gloo"
        if "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend, rank=rank, world_size=world)
        else:
            if world != 1:
                raise RuntimeError(f"WORLD_SIZE={world} without MASTER_ADDR: launch the workers with torchrun")
            store = dist.FileStore(os.path.join(tempfile.mkdtemp(prefix="medadapt-pg-"), "store"), 1)
            dist.init_process_group(backend, store=store, rank=0, world_size=1)
    if dist.get_world_size() != world:
        raise RuntimeError(f"the process group has {dist.get_world_size()} ranks, WORLD_SIZE is {world}")
    key = id(dist.group.WORLD)
    if key not in _GROUPS:
        _GROUPS[key] = dist.new_group(backend="gloo")
    mesh = init_device_mesh("cuda" if gpu else "cpu", (world,))
    return Dist(rank, world, local, torch.device("cuda", local) if gpu else torch.device("cpu"), mesh, _GROUPS[key])


# ----------------------------------------------------------------------------------------------- model

def load_model(model_dir: str, attn_implementation: str | None):
    """fp32 master weights (FSDP's mixed precision casts for compute); transformers >= 5 would
    otherwise load the checkpoint's dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch.float32}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)


def _checkpoint_activations(layer) -> None:
    """Recompute the layer's activations in backward. Wraps `forward` in place rather than the module
    (checkpoint_wrapper), so parameter names - the state's and the export's keys - stay the model's."""
    from torch.utils.checkpoint import checkpoint

    forward = layer.forward

    def checkpointed(*args, **kwargs):
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    layer.forward = checkpointed


def decoder_layers(model):
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no decoder layers at model.model.layers; the engine shards "
                         "decoder-only Hugging Face causal LMs (Qwen2, Qwen3, Llama)")
    return layers


def mixed_precision(cfg: ShardingConfig, dist_: Dist):
    """(param dtype, reduce dtype) names; bf16 compute only on GPUs."""
    return ("bfloat16", "float32") if cfg.bf16 and dist_.device.type == "cuda" else ("float32", "float32")


def build_model(cfg: EngineConfig, dist_: Dist):
    """The model, loaded on every rank, then sharded: each decoder layer, then the root."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    model = load_model(cfg.model.path, cfg.model.attn_implementation)
    model.config.use_cache = False  # no KV cache in training
    param, reduce = mixed_precision(cfg.sharding, dist_)
    policy = MixedPrecisionPolicy(param_dtype=getattr(torch, param), reduce_dtype=getattr(torch, reduce))
    model.to(dist_.device)
    for layer in decoder_layers(model):
        if cfg.model.activation_checkpointing:
            _checkpoint_activations(layer)
        if cfg.model.compile:
            layer.compile()
        fully_shard(layer, mesh=dist_.mesh, mp_policy=policy,
                    reshard_after_forward=cfg.sharding.reshard_after_forward)
    # The root keeps embed_tokens, norm and lm_head (one unit: a tied embedding is one parameter);
    # it is needed again first in backward, so it stays gathered after forward.
    fully_shard(model, mesh=dist_.mesh, mp_policy=policy, reshard_after_forward=False)
    model.train()
    return model


def no_decay(name: str) -> bool:
    """Biases and norm weights are not decayed (as the transformers Trainer does)."""
    return name.endswith(".bias") or "norm" in name.rsplit(".", 2)[-2].lower()


def build_optimizer(model, cfg: OptimizerConfig, dist_: Dist):
    import torch

    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if no_decay(name) else decay).append(p)
    impl = {"fused": True} if dist_.device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": plain, "weight_decay": 0.0}],
                             lr=cfg.learning_rate, betas=cfg.betas, eps=cfg.eps, **impl)


def build_scheduler(optimizer, cfg: SchedulerConfig, total_steps: int):
    from transformers import get_scheduler

    extra = {"scheduler_specific_kwargs": {"min_lr_rate": 0.1}} if cfg.name == "cosine_with_min_lr" else {}
    return get_scheduler(cfg.name, optimizer, num_warmup_steps=cfg.warmup_steps(total_steps),
                         num_training_steps=total_steps, **extra)


# ------------------------------------------------------------------------------------------------ data

class BlockOrder:
    """The epoch's order of packed blocks: a seeded permutation, one global batch per step."""

    def __init__(self, dataset, seed: int, effective: int, per_device: int, world: int):
        import torch

        self.dataset, self.effective, self.per_device, self.world = dataset, effective, per_device, world
        self.accum = effective // (per_device * world)
        self.order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()

    def global_batch(self, step: int) -> list[int]:
        """Block indices of optimizer step `step` (1-based)."""
        return self.order[(step - 1) * self.effective: step * self.effective]

    def micro_batch(self, step: int, micro: int, rank: int):
        import torch

        start = (micro * self.world + rank) * self.per_device
        rows = self.global_batch(step)[start:start + self.per_device]
        return torch.tensor(self.dataset[rows]["input_ids"], dtype=torch.long)


# ----------------------------------------------------------------------------------------------- state

def _rng_state() -> dict:
    import numpy as np
    import torch

    out = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state()
    return out


def _set_rng_state(saved: dict) -> None:
    import numpy as np
    import torch

    random.setstate(saved["python"])
    np.random.set_state(saved["numpy"])
    torch.set_rng_state(saved["torch"])
    if "cuda" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state(saved["cuda"])


class Checkpointer:
    """Saves and loads training states (DCP) in the run's state directory; rank 0 publishes them."""

    def __init__(self, state_dir: Path, dist_: Dist, cfg: CheckpointConfig, record: dict, journal):
        self.root, self.dist, self.cfg, self.record, self.journal = Path(state_dir), dist_, cfg, record, journal
        self.pending = None  # (future, step, staged dir, reason)
        self.saved: list[int] = []
        self.blocked_seconds: list[float] = []  # how long each save held training up

    def save(self, model, optimizer, step: int, trainer_state: dict, reason: str, wait: bool) -> None:
        import torch
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        started = time.perf_counter()
        self.wait()  # one save in flight at a time (waiting for it blocks training too)
        staged = self.root / states.STAGING / f"{states.PREFIX}{step}"
        if self.dist.main:
            staged.mkdir(parents=True, exist_ok=True)
            (staged / TRAINER_STATE).write_text(json.dumps(trainer_state, default=float) + "\n")
        self.dist.barrier()  # the directory exists for every rank
        torch.save(_rng_state(), staged / RNG.format(rank=self.dist.rank))
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        target = str(staged / DCP_DIR)
        if self.cfg.async_save and not wait:
            # Training goes on once the state is staged (copied to host memory); the writes run in a
            # thread whose collectives use the checkpoint group, not the training group.
            response = dcp.async_save(state, checkpoint_id=target, process_group=self.dist.ckpt_group)
            future = getattr(response, "upload_completion", response)
            self.pending = (future, step, staged, reason)
        else:
            dcp.save(state, checkpoint_id=target, process_group=self.dist.ckpt_group)
            self.pending = (None, step, staged, reason)
        if wait or not self.cfg.async_save:
            self.wait()  # published before training goes on
        self.blocked_seconds.append(time.perf_counter() - started)

    def done_here(self) -> bool:
        """This rank's part of the pending save is written (or there is none)."""
        return self.pending is None or self.pending[0] is None or self.pending[0].done()

    def wait(self) -> None:
        """Block until the pending save is written on every rank, then publish it."""
        if self.pending is None:
            return
        future = self.pending[0]
        if future is not None:
            future.result()
        self.dist.barrier()
        self.publish()

    def publish(self) -> None:
        """The pending save, written on every rank: marker last, then one rename out of staging."""
        _, step, staged, reason = self.pending
        self.pending = None
        if self.dist.main:
            target = states.publish(staged, self.root, {**self.record, "step": step, "saved_at": time.time()})
            states.rotate(self.root, self.cfg.keep, protect=target)
            print(f"[train] state saved at step {step} ({reason}): {target}", flush=True)
            self.journal(f"state saved at step {step} ({reason})")
        self.saved.append(step)

    def load(self, path: Path, model, optimizer) -> dict:
        """Restore model and optimizer shards (resharded if the world size changed), this rank's RNG
        state (where the saving run had this rank) and the trainer state."""
        import torch
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(path / DCP_DIR), process_group=self.dist.ckpt_group)
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        rng = path / RNG.format(rank=self.dist.rank)
        if rng.is_file():
            _set_rng_state(torch.load(rng, weights_only=False))
        return json.loads((path / TRAINER_STATE).read_text())


# ---------------------------------------------------------------------------------------------- export

def export_hf(model, base_model: str, out_dir: str | Path, dist_: Dist, save_dtype: str | None,
              record: dict[str, dict] | None = None, max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
    """The sharded model as a Hugging Face checkpoint directory (safetensors, config with use_cache
    on, generation config, the base model's tokenizer, and `record` {file: JSON object}), written
    atomically by rank 0. Gathered one tensor at a time (a collective on every rank); rank 0 holds at
    most one safetensors shard. A tied weight is saved once, as save_pretrained does."""
    import torch
    from safetensors.torch import save_file
    from torch.distributed.tensor import DTensor

    dtype = getattr(torch, save_dtype) if save_dtype else None
    seen: set[int] = set()
    if dist_.main:
        ctx = atomic_path(out_dir)
        tmp = ctx.__enter__()
        tmp.mkdir(parents=True)
    shards, current, size, weight_map = [], {}, 0, {}

    def flush():
        nonlocal current, size
        if current:
            name = f"part-{len(shards):05d}.safetensors"
            save_file(current, str(tmp / name), metadata={"format": "pt"})
            shards.append((name, list(current)))
            current, size = {}, 0

    try:
        for name, param in model.state_dict(keep_vars=True).items():
            if id(param) in seen:  # the tied LM head: the embedding itself
                continue
            seen.add(id(param))
            full = param.full_tensor() if isinstance(param, DTensor) else param
            if not dist_.main:
                del full
                continue
            full = full.detach().to("cpu")
            if dtype is not None and full.is_floating_point():
                full = full.to(dtype)
            nbytes = full.numel() * full.element_size()
            if current and size + nbytes > max_shard_bytes:
                flush()
            current[name], size = full.contiguous(), size + nbytes
        if dist_.main:
            flush()
            total = len(shards)
            if total == 1:
                os.replace(tmp / shards[0][0], tmp / "model.safetensors")
            else:
                for i, (part, names) in enumerate(shards):
                    final = f"model-{i + 1:05d}-of-{total:05d}.safetensors"
                    os.replace(tmp / part, tmp / final)
                    weight_map.update({n: final for n in names})
                index = {"metadata": {"total_size": sum((tmp / f).stat().st_size for f in set(weight_map.values()))},
                         "weight_map": weight_map}
                (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
            _write_model_files(model, base_model, tmp, save_dtype)
            for fname, obj in (record or {}).items():
                (tmp / fname).write_text(json.dumps(obj, indent=2, default=str) + "\n")
    except BaseException:
        if dist_.main:
            ctx.__exit__(*__import__("sys").exc_info())
        raise
    if dist_.main:
        ctx.__exit__(None, None, None)
    dist_.barrier()  # the directory exists when any rank returns


def _write_model_files(model, base_model: str, out: Path, save_dtype: str | None) -> None:
    import copy

    from transformers import AutoTokenizer

    config = copy.deepcopy(model.config)
    config.use_cache = True  # saved for inference
    config.dtype = save_dtype or "float32"
    config.save_pretrained(out)
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.save_pretrained(out)
    AutoTokenizer.from_pretrained(base_model).save_pretrained(out)


# --------------------------------------------------------------------------------------------- trainer

class Trainer:
    """The training loop of one segment, in phases: `setup` (model, optimizer, schedule, data),
    `restore` (a state), `run` (steps with `train_step` and `after_step`), then `export`."""

    def __init__(self, cfg: EngineConfig, dist_: Dist, dataset, total_steps: int, effective: int,
                 per_device: int, n_params: int, seq_len: int, stop_flag, checkpointer: Checkpointer,
                 log_dir: Path | None = None):
        self.cfg, self.dist, self.dataset, self.total_steps = cfg, dist_, dataset, total_steps
        self.effective, self.per_device, self.n_params, self.seq_len = effective, per_device, n_params, seq_len
        self.flag, self.ckpt, self.log_dir = stop_flag, checkpointer, log_dir
        self.step = 0
        self.log_history: list[dict] = []
        self._window: list[dict] = []  # per-step metrics since the last log entry
        self.tensorboard = None

    # -- phases
    def setup(self) -> None:
        self.model = build_model(self.cfg, self.dist)
        self.optimizer = build_optimizer(self.model, self.cfg.optimizer, self.dist)
        self.scheduler = build_scheduler(self.optimizer, self.cfg.scheduler, self.total_steps)
        self.order = BlockOrder(self.dataset, self.cfg.seed, self.effective, self.per_device, self.dist.world)
        if self.cfg.metrics.tensorboard and self.dist.main and self.log_dir is not None:
            self.tensorboard = open_tensorboard(self.log_dir)

    def restore(self, path: Path) -> None:
        saved = self.ckpt.load(path, self.model, self.optimizer)
        self.scheduler.load_state_dict(saved["scheduler"])
        self.step = int(saved["step"])
        if saved["blocks_seen"] != self.step * self.effective:
            raise RuntimeError(f"{path / TRAINER_STATE}: blocks_seen {saved['blocks_seen']} is not step "
                               f"{self.step} x effective batch {self.effective}: another data order")
        self.log_history = saved["log_history"]

    def trainer_state(self) -> dict:
        return {"step": self.step, "blocks_seen": self.step * self.effective, "seed": self.cfg.seed,
                "scheduler": self.scheduler.state_dict(), "log_history": self.log_history,
                "world_size": self.dist.world}

    def train_step(self, step: int) -> dict:
        """One optimizer step over the global batch of `step`; the loss is its mean on every rank."""
        import torch
        import torch.distributed as dist
        from torch.distributed.tensor import DTensor

        started = time.perf_counter()
        accum = self.order.accum
        total = torch.zeros((), device=self.dist.device)
        for micro in range(accum):
            ids = self.order.micro_batch(step, micro, self.dist.rank).to(self.dist.device)
            loss = self.model(input_ids=ids, labels=ids).loss / accum
            loss.backward()
            total += loss.detach().float()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optimizer.max_grad_norm)
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no AVG
        loss = total.item() / self.dist.world
        seconds = time.perf_counter() - started
        tokens = self.effective * self.seq_len / seconds
        metrics = {"loss": loss, "grad_norm": float(norm), "learning_rate": lr, "seconds": seconds,
                   "tokens_per_second": tokens}
        if self.cfg.metrics.peak_tflops:
            metrics["mfu"] = mfu(self.n_params, tokens / self.dist.world, self.cfg.metrics.peak_tflops)
        return metrics

    def log(self, step: int) -> None:
        """A log entry averaging the steps since the previous one (the loss window of a "loss" entry
        is the steps it covers; window_mean_loss relies on that)."""
        if not self._window:
            return
        n = len(self._window)
        mean = {k: sum(m[k] for m in self._window) / n for k in ("loss", "grad_norm", "tokens_per_second")}
        seconds = sum(m["seconds"] for m in self._window)
        entry = {"step": step, "epoch": step / self.total_steps, "loss": mean["loss"],
                 "grad_norm": mean["grad_norm"], "learning_rate": self._window[-1]["learning_rate"],
                 "tokens_per_second": n * self.effective * self.seq_len / seconds,
                 "tokens_per_second_per_device": n * self.effective * self.seq_len / seconds / self.dist.world}
        if self.cfg.metrics.peak_tflops:
            entry["mfu"] = mfu(self.n_params, entry["tokens_per_second_per_device"], self.cfg.metrics.peak_tflops)
        self.log_history.append(entry)
        self._window = []
        if self.dist.main:
            print("[train] " + json.dumps(entry), flush=True)
            if self.tensorboard is not None:
                for k, v in entry.items():
                    if k != "step":
                        self.tensorboard.add_scalar(f"train/{k}", v, step)

    def after_step(self, step: int, stop: int) -> tuple[bool, str]:
        """Whether to save (and why) and whether to stop, agreed by all ranks; also publishes an
        asynchronous save once every rank has written it."""
        cfg = self.ckpt.cfg
        timed = bool(cfg.save_every_minutes) and time.monotonic() - self.last_save >= cfg.save_every_minutes * 60
        pending = self.ckpt.pending is not None
        timed, signalled, unwritten = self.dist.any(timed, self.flag.signal is not None,
                                                    not self.ckpt.done_here())
        if pending and not unwritten:
            self.ckpt.wait()  # written everywhere: publish without blocking on anything
        every = bool(cfg.save_every_steps) and step % cfg.save_every_steps == 0
        reason = ("the segment's end" if step >= stop else
                  f"{self.flag.signal or 'a stop signal (on another rank)'}" if signalled else
                  f"every {cfg.save_every_steps} steps" if every else
                  f"every {cfg.save_every_minutes:g} minutes" if timed else "")
        return step >= stop or signalled, reason

    def run(self, stop: int) -> None:
        self.last_save = time.monotonic()
        while self.step < stop:
            step = self.step + 1
            self._window.append(self.train_step(step))
            self.step = step
            finished, reason = self.after_step(step, stop)
            if reason or step % self.cfg.metrics.logging_steps == 0:
                # a loss entry at every save, so that a resumed run's log windows are the uninterrupted one's
                self.log(step)
            if reason:
                self.ckpt.save(self.model, self.optimizer, step, self.trainer_state(), reason, wait=finished)
                self.last_save = time.monotonic()
            if finished:
                break
        self.ckpt.wait()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def open_tensorboard(log_dir: Path):
    """A TensorBoard writer, or None (with a note) where the tensorboard package is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("[train] train.tensorboard is set but the tensorboard package is not installed: no event files",
              flush=True)
        return None
    return SummaryWriter(log_dir=str(log_dir))


def describe(cfg: EngineConfig, dist_: Dist, accelerator: str) -> dict:
    """The engine's facts for training.json."""
    param, reduce = mixed_precision(cfg.sharding, dist_)
    return {"engine": "fsdp2", "fsdp_version": 2, "mesh": {"device_type": dist_.device.type, "shape": [dist_.world]},
            "param_dtype": param, "reduce_dtype": reduce,
            "activation_checkpointing": cfg.model.activation_checkpointing, "compile": cfg.model.compile,
            "reshard_after_forward": cfg.sharding.reshard_after_forward, "world_size": dist_.world,
            "accelerator": accelerator, "async_save": cfg.checkpoint.async_save}

