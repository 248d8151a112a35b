"""TEMPORARY (lead's placeholder until the cluster helper's module lands): old .smk logic."""
from __future__ import annotations

import math

from medadapt.config import Grid


class Cluster:
    def __init__(self, config):
        self.config, self.grid = config, Grid(config)

    def _platform(self, family):
        return self.grid.platform(family)

    def _gpus(self, kind, family, size):
        per_size = self.config["families"][family][f"{kind}_gpus"]
        return per_size.get(size, 1 if self._platform(family)["gpus_per_node"] else 0)

    def nodes(self, kind, family, size):
        per_node = self._platform(family)["gpus_per_node"]
        return max(1, math.ceil(self._gpus(kind, family, size) / per_node)) if per_node else 1

    def gpus_per_node(self, kind, family, size):
        return min(self._gpus(kind, family, size), self._platform(family)["gpus_per_node"])

    def gpu_resources(self, kind, family, size):
        p = self._platform(family)
        g = self.gpus_per_node(kind, family, size)
        part = p["eval_partition"] if kind == "eval" and p["eval_partition"] else p["partition"]
        res = dict(slurm_partition=part or "", nodes=self.nodes(kind, family, size),
                   gres=f"gpu:{g}" if g else "", cpus_per_task=max(1, g * p["cpus_per_gpu"]),
                   mem_mb=max(4000, g * p["mem_mb_per_gpu"]), tasks_per_gpu=0)
        if kind == "train":
            n = self.nodes(kind, family, size)
            res.update(tasks=n, mpi="srun" if n > 1 else "")
        return res

    def corpus_resources(self, gpus, runtime):
        p = self.config["platforms"][self.config["corpus"]["platform"]]
        n = gpus if p["gpus_per_node"] else 0
        return dict(
            slurm_partition=(p["eval_partition"] or p["partition"] or "") if n else self.cpu_partition(),
            gres=f"gpu:{n}" if n else "", cpus_per_task=max(2, n * p["cpus_per_gpu"]),
            mem_mb=max(8000, n * p["mem_mb_per_gpu"]), runtime=runtime, tasks_per_gpu=0)

    def cpu_partition(self):
        return (self.config["platforms"].get("cpu") or {}).get("partition") or ""

    def threads(self, kind, family, size, cpu_default):
        p = self._platform(family)
        return max(1, self.gpus_per_node(kind, family, size) * p["cpus_per_gpu"]) if p["gpus_per_node"] else cpu_default

    def device(self, family):
        return "cuda" if self._platform(family)["gpus_per_node"] else "cpu"

    def eval_tensor_parallel(self, family, size):
        return max(1, self.gpus_per_node("eval", family, size))

    def pack_threads(self, family):
        return 16 if self._platform(family)["gpus_per_node"] else 2

    def pack_mem_mb(self, family):
        return 64000 if self._platform(family)["gpus_per_node"] else 4000

    merge_mem_mb = pack_mem_mb

    def worker_threads(self, family, size, threads):
        return max(1, threads // max(1, self.gpus_per_node("train", family, size)))

    def train_launch(self, family, size, python, script):
        gpus, nodes = self.gpus_per_node("train", family, size), self.nodes("train", family, size)
        if gpus <= 1 and nodes == 1:
            return f"{python} {script}"
        if nodes == 1:
            return f"{python} -m torch.distributed.run --standalone --nproc-per-node={gpus} {script}"
        return (f"srun --ntasks-per-node=1 {python} -m torch.distributed.run --nnodes={nodes} "
                f"--nproc-per-node={gpus} --rdzv-backend=c10d "
                "--rdzv-endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):29500 "
                f"{script}")
