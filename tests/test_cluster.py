"""Cluster resources of the paper grid and the demo, pinned to numbers worked out from the configs.

Paper platforms (config/config.yaml): amd = standard-g (eval: small-g), 8 GCDs/node, 7 CPUs and
60000 MB per GCD; nvidia = gpu-h100, 8 GPUs/node, 16 CPUs and 240000 MB per GPU; cpu = small.
"""
import copy
import types
from pathlib import Path

import pytest

from medadapt.cluster import Cluster
from medadapt.config import load

ROOT = Path(__file__).resolve().parents[1]
SRUN = ("srun --ntasks-per-node=1 PY -m torch.distributed.run --nnodes={n} --nproc-per-node=8 "
        "--rdzv-backend=c10d --rdzv-endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):29500")


@pytest.fixture(scope="module")
def paper():
    return Cluster(load(ROOT / "config" / "config.yaml"))


@pytest.fixture(scope="module")
def demo():
    return Cluster(load(ROOT / "config" / "demo.yaml"))


def test_qwen3_8b_trains_on_8_lumi_nodes_with_srun_torchrun(paper):
    # 64 GCDs / 8 per node = 8 nodes; per node 8 GCDs x 7 CPUs = 56, 8 x 60000 MB = 480000
    assert paper.resources("train", "qwen3", "8b") == {
        "slurm_partition": "standard-g", "nodes": 8, "gres": "gpu:8", "cpus_per_task": 56,
        "mem_mb": 480000, "tasks_per_gpu": 0, "tasks": 8, "mpi": "srun"}
    assert paper.gpus("train", "qwen3", "8b") == 64
    assert paper.threads("train", "qwen3", "8b") == 56
    assert paper.omp_threads("qwen3", "8b", 56) == 7  # one worker per GCD
    assert paper.launch_command("qwen3", "8b", "PY") == SRUN.format(n=8)


@pytest.mark.parametrize("size,nodes", [("1.7b", 4), ("4b", 4)])  # 32 GCDs each
def test_qwen3_mid_sizes_train_on_4_nodes(paper, size, nodes):
    res = paper.resources("train", "qwen3", size)
    assert (res["nodes"], res["tasks"], res["mpi"], res["gres"]) == (nodes, nodes, "srun", "gpu:8")
    assert paper.launch_command("qwen3", size, "PY") == SRUN.format(n=nodes)


def test_qwen3_0_6b_trains_on_one_node_standalone(paper):
    res = paper.resources("train", "qwen3", "0.6b")
    assert (res["nodes"], res["tasks"], res["mpi"], res["slurm_partition"]) == (1, 1, "", "standard-g")
    assert paper.launch_command("qwen3", "0.6b", "PY") == \
        "PY -m torch.distributed.run --standalone --nproc-per-node=8"


def test_qwen25_7b_trains_on_one_h100_node_standalone(paper):
    # 8 GPUs x 16 CPUs = 128; 8 x 240000 MB = 1920000
    assert paper.resources("train", "qwen2.5", "7b") == {
        "slurm_partition": "gpu-h100", "nodes": 1, "gres": "gpu:8", "cpus_per_task": 128,
        "mem_mb": 1920000, "tasks_per_gpu": 0, "tasks": 1, "mpi": ""}
    assert paper.threads("train", "qwen2.5", "7b") == 128
    assert paper.omp_threads("qwen2.5", "7b", 128) == 16
    assert paper.launch_command("qwen2.5", "7b", "/venv/bin/python") == \
        "/venv/bin/python -m torch.distributed.run --standalone --nproc-per-node=8"
    assert paper.device("qwen2.5") == "cuda"


def test_qwen3_eval_runs_on_small_g_with_one_gcd(paper):
    assert paper.resources("eval", "qwen3", "8b") == {
        "slurm_partition": "small-g", "nodes": 1, "gres": "gpu:1", "cpus_per_task": 7, "mem_mb": 60000,
        "tasks_per_gpu": 0}
    assert paper.threads("eval", "qwen3", "8b") == 7
    assert paper.device("qwen3") == "cuda"


@pytest.mark.parametrize("family,partition,cpus,mem", [("qwen3", "small-g", 14, 120000),
                                                       ("qwen2.5", "gpu-h100", 32, 480000)])
def test_14b_baselines_evaluate_on_two_gpus(paper, family, partition, cpus, mem):
    assert paper.resources("eval", family, "14b") == {
        "slurm_partition": partition, "nodes": 1, "gres": "gpu:2", "cpus_per_task": cpus, "mem_mb": mem,
        "tasks_per_gpu": 0}
    assert paper.gpus("eval", family, "14b") == 2


def test_paper_pack_and_merge_are_cpu_jobs_sized_for_large_models(paper):
    for family in ("qwen3", "qwen2.5"):
        assert paper.resources("pack", family) == {"slurm_partition": "small", "mem_mb": 64000}
        assert paper.threads("pack", family) == 16
        assert paper.resources("merge", family, "8b") == {"mem_mb": 64000}
        assert paper.threads("merge", family, "8b") == 1
        assert paper.gpus("pack", family) == paper.gpus("merge", family, "8b") == 0


def test_paper_corpus_stages_run_on_corpus_platform(paper):
    # corpus.platform: nvidia; the annotator's tensor_parallel_size 8 takes a whole node
    assert paper.corpus_resources(8) == {"slurm_partition": "gpu-h100", "gres": "gpu:8", "cpus_per_task": 128,
                                         "mem_mb": 1920000, "tasks_per_gpu": 0}
    assert paper.corpus_resources(1) == {"slurm_partition": "gpu-h100", "gres": "gpu:1", "cpus_per_task": 16,
                                         "mem_mb": 240000, "tasks_per_gpu": 0}


def test_corpus_on_amd_uses_its_eval_partition(paper):
    config = copy.deepcopy(paper.config)
    config["corpus"]["platform"] = "amd"
    assert Cluster(config).corpus_resources(1)["slurm_partition"] == "small-g"


def test_demo_never_asks_for_a_gpu(demo):
    for size in ("s", "m", "l"):
        for stage in ("train", "eval"):
            res = demo.resources(stage, "tiny", size)
            assert (res["gres"], res["nodes"], res["slurm_partition"]) == ("", 1, "")
            assert (res["cpus_per_task"], res["mem_mb"]) == (1, 4000)
            assert demo.gpus(stage, "tiny", size) == 0
        assert demo.resources("train", "tiny", size)["mpi"] == ""
        assert demo.threads("train", "tiny", size) == 2 and demo.threads("eval", "tiny", size) == 1
        assert demo.launch_command("tiny", size, "PY") == "PY"
        assert demo.omp_threads("tiny", size, 2) == 2
        assert demo.resources("merge", "tiny", size) == {"mem_mb": 4000}
    assert demo.device("tiny") == "cpu"
    assert demo.resources("pack", "tiny") == {"slurm_partition": "", "mem_mb": 4000}
    assert demo.threads("pack", "tiny") == 2


def test_demo_corpus_stages_run_on_the_cpu_platform(demo):
    # demo.yaml sets no corpus.platform: the schema's default, cpu (partition null)
    assert demo.corpus_resources(1) == {"slurm_partition": "", "gres": "", "cpus_per_task": 2, "mem_mb": 8000,
                                        "tasks_per_gpu": 0}


def test_gpu_stages_on_the_cpu_platform_ask_for_no_gpu(paper):
    """Explicit GPU counts on a CPU platform still give no GPU (nothing to allocate there)."""
    config = copy.deepcopy(paper.config)
    config["families"]["qwen3"]["platform"] = "cpu"
    cpu = Cluster(config)
    res = cpu.resources("train", "qwen3", "8b")
    assert (res["gres"], res["nodes"], res["mpi"], res["slurm_partition"]) == ("", 1, "", "small")
    assert cpu.gpus_per_node("train", "qwen3", "8b") == 0
    assert cpu.launch_command("qwen3", "8b", "PY") == "PY"
    assert cpu.resources("eval", "qwen3", "14b")["gres"] == ""


def test_single_gpu_training_is_one_plain_process(paper):
    config = copy.deepcopy(paper.config)
    config["families"]["qwen2.5"]["train_gpus"] = {"0.5b": 1}
    one = Cluster(config)
    assert one.launch_command("qwen2.5", "0.5b", "PY") == "PY"
    assert one.resources("train", "qwen2.5", "0.5b")["gres"] == "gpu:1"
    # a size with no train_gpus entry gets one GPU on a GPU platform
    assert one.gpus("train", "qwen2.5", "1.5b") == 1


def test_by_wildcards_gives_snakemake_functions(paper):
    wc = types.SimpleNamespace(family="qwen3", size="8b")
    train = paper.by_wildcards("train")
    assert {k: f(wc) for k, f in train.items()} == paper.resources("train", "qwen3", "8b")
    pack = paper.by_wildcards("pack")  # the pack rule has no {size}
    assert {k: f(types.SimpleNamespace(family="qwen2.5")) for k, f in pack.items()} == \
        {"slurm_partition": "small", "mem_mb": 64000}


def test_unknown_stage_is_named(paper):
    with pytest.raises(ValueError, match=r"stage must be one of \['train', 'eval', 'pack', 'merge'\], got 'mcqa'"):
        paper.resources("mcqa", "qwen3", "8b")
