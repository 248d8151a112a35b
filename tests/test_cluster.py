"""Cluster resources of the paper grid and the demo, pinned to numbers worked out from the configs.

Paper platforms (config/config.yaml): amd = standard-g (eval: small-g), 8 GCDs/node, 7 CPUs and
60000 MB per GCD, in LUMI's image via singularity; nvidia = gpu-h100, 8 GPUs/node, 14 CPUs and 224000 MB
per GPU (a DGX H100: 112 cores, 2 TB), in its image via apptainer; cpu = small. The working directory
is /w and the checkout /repo (so the binds are fixed).
"""
import copy
import os
import subprocess
import types
from pathlib import Path

import pytest

from medadapt.cluster import Cluster, select_platforms
from medadapt.config import ConfigError, load

ROOT = Path(__file__).resolve().parents[1]
# One torchrun per node (srun), the rendezvous endpoint resolved inside the step on each node.
SRUN = ("srun --nodes={n} --ntasks={n} --ntasks-per-node=1 --cpus-per-task=56 --kill-on-bad-exit=1 bash -c '{env}export PET_RDZV_ENDPOINT="
        "$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1):$((29500 + ${{SLURM_JOB_ID:-0}} % 1000)); "
        "exec \"$@\"' medadapt-launch {container}python -m torch.distributed.run --nnodes={n} --nproc-per-node=8 "
        "--rdzv-backend=c10d --rdzv-id=medadapt -- E.py")
LUMI_ENV = ('export NCCL_SOCKET_IFNAME="hsn0,hsn1,hsn2,hsn3"; export NCCL_NET_GDR_LEVEL="PHB"; '
            'export MIOPEN_USER_DB_PATH="/tmp/$USER-miopen-cache-$SLURM_JOB_ID-$SLURM_NODEID"; '
            'export MIOPEN_CUSTOM_CACHE_DIR="/tmp/$USER-miopen-cache-$SLURM_JOB_ID-$SLURM_NODEID"; '
            'export CXI_FORK_SAFE="1"; export CXI_FORK_SAFE_HP="1"; export FI_CXI_DISABLE_CQ_HUGETLB="1"; '
            'export MEDADAPT_GPU_CPUS="49-55 57-63 17-23 25-31 1-7 9-15 33-39 41-47"; ')
CACHES = 'export HF_HOME="/w/cache/huggingface"; export VLLM_CACHE_ROOT="/w/cache/vllm"; ' \
         'export TRITON_CACHE_DIR="/w/cache/triton"; '
# LUMI: singularity (no apptainer there), --rocm, the image's conda environment, LUMI's file systems.
LUMI_CONTAINER = ("singularity exec --rocm --bind /pfs,/scratch,/projappl,/project,/flash,/appl,/w,/repo "
                  "containers/medadapt-rocm.sif bash -c '$WITH_CONDA; exec \"$@\"' medadapt-container ")
NVIDIA_CONTAINER = ("apptainer exec --nv --bind /w,/repo containers/medadapt-cuda.sif "
                    "bash -c 'exec \"$@\"' medadapt-container ")


@pytest.fixture(scope="module")
def paper():
    return Cluster(load(ROOT / "config" / "config.yaml"), workdir="/w")


@pytest.fixture(scope="module")
def demo():
    return Cluster(load(ROOT / "config" / "demo.yaml"))


def test_qwen3_8b_trains_on_8_lumi_nodes_with_srun_torchrun(paper):
    # 64 GCDs / 8 per node = 8 nodes; per node 8 GCDs x 7 CPUs = 56, 8 x 60000 MB = 480000
    assert paper.resources("train", "qwen3", "8b") == {
        "slurm_partition": "standard-g", "nodes": 8, "gres": "gpu:8", "cpus_per_task": 56,
        "mem_mb": 480000, "tasks_per_gpu": 0, "tasks": 8, "mpi": "srun", "expect_gpus": 8}
    assert paper.gpus("train", "qwen3", "8b") == 64 == paper.train_processes("qwen3", "8b")
    assert paper.threads("train", "qwen3", "8b") == 56
    assert paper.omp_threads("qwen3", "8b", 56) == 7  # one worker per GCD
    assert paper.launch_command("qwen3", "8b", "PY", "E.py", "/repo") == \
        SRUN.format(n=8, env=LUMI_ENV + CACHES, container=LUMI_CONTAINER)


@pytest.mark.parametrize("size,nodes", [("1.7b", 4), ("4b", 4)])  # 32 GCDs each
def test_qwen3_mid_sizes_train_on_4_nodes(paper, size, nodes):
    res = paper.resources("train", "qwen3", size)
    assert (res["nodes"], res["tasks"], res["mpi"], res["gres"]) == (nodes, nodes, "srun", "gpu:8")
    assert paper.launch_command("qwen3", size, "PY", "E.py", "/repo") == \
        SRUN.format(n=nodes, env=LUMI_ENV + CACHES, container=LUMI_CONTAINER)


def test_qwen3_0_6b_trains_on_one_node_standalone(paper):
    res = paper.resources("train", "qwen3", "0.6b")
    # no `mpi`: the Slurm plugin then starts the job in a step, where the time-limit signal reaches it
    assert (res["nodes"], res["tasks"], res["mpi"], res["slurm_partition"]) == (1, 1, None, "standard-g")
    assert paper.launch_command("qwen3", "0.6b", "PY", "E.py", "/repo") == (
        f"bash -c '{LUMI_ENV}{CACHES}exec \"$@\"' medadapt-launch {LUMI_CONTAINER}"
        "python -m torch.distributed.run --standalone --nproc-per-node=8 -- E.py")


def test_lumi_training_runs_in_the_rocm_container_inside_its_step(paper):
    """srun stays outside the image and the image wraps each torchrun; the image's python runs."""
    cmd = paper.launch_command("qwen3", "8b", "PY", "E.py", "/repo")
    assert cmd.startswith("srun --nodes=8 --ntasks=8 --ntasks-per-node=1 ")
    assert f" medadapt-launch {LUMI_CONTAINER}python -m torch.distributed.run --nnodes=8 " in cmd
    assert "apptainer" not in cmd and "PY" not in cmd
    one = paper.launch_command("qwen2.5", "7b", "PY", "E.py", "/repo")
    assert one == f"bash -c '{CACHES}exec \"$@\"' medadapt-launch {NVIDIA_CONTAINER}python -m torch.distributed.run " \
        "--standalone --nproc-per-node=8 -- E.py"
    # without an image the host's Python runs, with no container and no cache exports (the workflow
    # sets those in its own environment)
    config = copy.deepcopy(paper.config)
    config["platforms"]["amd"]["container"] = None
    host = Cluster(config, workdir="/w").launch_command("qwen3", "8b", "PY", "E.py", "/repo")
    assert "singularity" not in host and "HF_HOME" not in host
    assert f"medadapt-launch PY -m torch.distributed.run --nnodes=8 " in host


def test_eval_and_corpus_gpu_rules_enter_the_container_as_training_does(paper):
    """The same runtime, GPU flag, binds, caches and activation as training; eval jobs get the
    platform's env too (MIOpen's per-node cache), but no GPU-to-CPU map (that is torchrun's)."""
    amd = paper.entry_command("eval", "qwen3", "PY", "E.py", "/repo")
    assert amd == f"bash -c '{LUMI_ENV.split('export MEDADAPT_GPU_CPUS')[0]}{CACHES}exec \"$@\"' " \
        f"medadapt-launch {LUMI_CONTAINER}python E.py"
    nvidia = paper.entry_command("eval", "qwen2.5", "PY", "E.py", "/repo")
    assert nvidia == f"bash -c '{CACHES}exec \"$@\"' medadapt-launch {NVIDIA_CONTAINER}python E.py"
    # corpus stages: corpus.platform (nvidia in the paper), no family
    assert paper.entry_command("corpus", None, "PY", "E.py", "/repo") == nvidia
    # CPU stages never enter a container
    assert paper.container("pack", "qwen3") is None


def test_container_settings_come_from_the_platform_block(paper):
    config = copy.deepcopy(paper.config)
    nv = config["platforms"]["nvidia"]
    nv |= {"container_runtime": "singularity", "container_gpu_flag": "--nvccli",
           "container_activate": "source /opt/env/bin/activate", "container_binds": ["/scratch", "/w/data"]}
    cmd = Cluster(config, workdir="/w").container_prefix("eval", "qwen2.5", "/w/repo")
    # /w/data and /w/repo lie inside the bound working directory: bound once, through it
    assert cmd == ("singularity exec --nvccli --bind /scratch,/w containers/medadapt-cuda.sif "
                   "bash -c 'source /opt/env/bin/activate; exec \"$@\"' medadapt-container ")
    nv["container_gpu_flag"] = ""
    assert Cluster(config, workdir="/w").container_prefix("eval", "qwen2.5").startswith(
        "singularity exec --bind /scratch,/w ")
    # a cache directory outside the working directory is bound too
    config["caches"] = "/flash/project_1/cache"
    c = Cluster(config, workdir="/w")
    assert "--bind /scratch,/w,/flash/project_1/cache " in c.container_prefix("eval", "qwen2.5")
    assert c.cache_env() == {"HF_HOME": "/flash/project_1/cache/huggingface",
                             "VLLM_CACHE_ROOT": "/flash/project_1/cache/vllm",
                             "TRITON_CACHE_DIR": "/flash/project_1/cache/triton"}


def test_the_launch_prefix_runs_the_command_in_the_container_with_caches_and_activation(tmp_path):
    """The rendered prefix, run by bash with a stand-in runtime on PATH that records its arguments
    and then runs what follows the image: the activation runs inside, the caches are exported."""
    config = load(ROOT / "config" / "demo.yaml")
    config["platforms"]["cpu"] |= {"gpus_per_node": 1, "container": "img.sif", "compute_on_cpu": True,
                                   "container_runtime": "singularity",
                                   "container_activate": "export MEDADAPT_ACTIVATED=yes"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runtime = bin_dir / "singularity"
    # singularity exec [options] IMAGE CMD...: record the options, then run CMD
    runtime.write_text('#!/bin/bash\necho "$*" > "$RECORD"\nshift\n'
                       'while [ "${1#-}" != "$1" ]; do shift; [ "$1" != "${1#/}" ] && shift; done\n'
                       'shift\nexec "$@"\n')
    runtime.chmod(0o755)
    cmd = Cluster(config, workdir=str(tmp_path)).entry_command("eval", "tiny", "PY", "-c 'import os; "
                                                               "print(os.environ[\"MEDADAPT_ACTIVATED\"], "
                                                               "os.environ[\"HF_HOME\"])'")
    cmd = cmd.replace("python -c", f"{os.sys.executable} -c")  # no `python` on every test machine's PATH
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(tmp_path / "args")}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout == f"yes {tmp_path}/cache/huggingface\n"
    assert (tmp_path / "args").read_text().startswith(f"exec --bind {tmp_path} img.sif bash -c ")


def test_qwen25_7b_trains_on_one_h100_node_standalone(paper):
    # 8 GPUs x 14 CPUs = 112 (a DGX H100's cores); 8 x 224000 MB = 1792000 (under its 2 TB)
    assert paper.resources("train", "qwen2.5", "7b") == {
        "slurm_partition": "gpu-h100", "nodes": 1, "gres": "gpu:8", "cpus_per_task": 112,
        "mem_mb": 1792000, "tasks_per_gpu": 0, "tasks": 1, "mpi": None, "expect_gpus": 8}
    assert paper.threads("train", "qwen2.5", "7b") == 112
    assert paper.omp_threads("qwen2.5", "7b", 112) == 14
    config = copy.deepcopy(paper.config)
    config["platforms"]["nvidia"]["container"] = None  # a CUDA venv on the nodes
    assert Cluster(config).launch_command("qwen2.5", "7b", "/venv/bin/python", "E.py") == \
        "/venv/bin/python -m torch.distributed.run --standalone --nproc-per-node=8 -- E.py"
    assert paper.device("qwen2.5") == "cuda"


def test_qwen3_eval_runs_on_small_g_with_one_gcd(paper):
    assert paper.resources("eval", "qwen3", "8b") == {
        "slurm_partition": "small-g", "nodes": 1, "gres": "gpu:1", "cpus_per_task": 7, "mem_mb": 60000,
        "tasks_per_gpu": 0, "expect_gpus": 1}
    assert paper.threads("eval", "qwen3", "8b") == 7
    assert paper.device("qwen3") == "cuda"


@pytest.mark.parametrize("family,partition,cpus,mem", [("qwen3", "small-g", 14, 120000),
                                                       ("qwen2.5", "gpu-h100", 28, 448000)])
def test_14b_baselines_evaluate_on_two_gpus(paper, family, partition, cpus, mem):
    assert paper.resources("eval", family, "14b") == {
        "slurm_partition": partition, "nodes": 1, "gres": "gpu:2", "cpus_per_task": cpus, "mem_mb": mem,
        "tasks_per_gpu": 0, "expect_gpus": 2}
    assert paper.gpus("eval", family, "14b") == 2


def test_paper_pack_and_merge_are_cpu_jobs_sized_by_the_cpu_platform(paper):
    # platforms.cpu.cpu_jobs: pack 16 threads / 64000 MB, merge 1 / 64000 (config/config.yaml)
    for family in ("qwen3", "qwen2.5"):
        assert paper.resources("pack", family) == {"slurm_partition": "small", "cpus_per_task": 16, "mem_mb": 64000}
        assert paper.threads("pack", family) == 16
        assert paper.resources("merge", family, "8b") == {"slurm_partition": "small", "cpus_per_task": 1,
                                                          "mem_mb": 64000}
        assert paper.threads("merge", family, "8b") == 1
        assert paper.gpus("pack", family) == paper.gpus("merge", family, "8b") == 0


def test_cpu_job_sizes_follow_the_platform_block(paper):
    """A smaller CPU node: pack and merge shrink with the block (no size is hard-coded)."""
    config = copy.deepcopy(paper.config)
    config["platforms"]["cpu"]["cpu_jobs"]["pack"] = {"threads": 4, "mem_mb": 16000}
    small = Cluster(config)
    assert small.resources("pack", "qwen3") == {"slurm_partition": "small", "cpus_per_task": 4, "mem_mb": 16000}
    assert small.threads("pack", "qwen3") == 4
    # without a cpu platform, CPU stages run on the family's platform, sized by its cpu_jobs
    del config["platforms"]["cpu"]
    config["corpus"]["platform"] = "nvidia"
    config["platforms"]["amd"]["cpu_jobs"]["merge"] = {"threads": 2, "mem_mb": 30000}
    assert Cluster(config).resources("merge", "qwen3", "8b") == {"slurm_partition": "standard-g",
                                                                 "cpus_per_task": 2, "mem_mb": 30000}


def test_paper_corpus_stages_run_on_corpus_platform(paper):
    # corpus.platform: nvidia; the annotator's tensor_parallel_size 8 takes a whole node
    assert paper.corpus_resources(8) == {"slurm_partition": "gpu-h100", "gres": "gpu:8", "cpus_per_task": 112,
                                         "mem_mb": 1792000, "tasks_per_gpu": 0, "expect_gpus": 8}
    assert paper.corpus_resources(1) == {"slurm_partition": "gpu-h100", "gres": "gpu:1", "cpus_per_task": 14,
                                         "mem_mb": 224000, "tasks_per_gpu": 0, "expect_gpus": 1}
    assert paper.corpus_threads(8) == 112


def test_corpus_filter_is_sized_from_the_config_and_the_corpus(paper):
    """One pass over every shard: the schema's defaults (4 cores, 32 GB, 30 min + 1 min per GB), on
    the cpu platform's partition; FineWeb-2 German (640 GB) gets about 11 hours, a demo corpus 31 min."""
    assert paper.filter_resources() == {"slurm_partition": "small", "cpus_per_task": 4, "mem_mb": 32000}
    assert paper.filter_runtime(640_000) == 670
    assert paper.filter_runtime(0.5) == 31
    config = copy.deepcopy(paper.config)
    config["corpus"]["filter"] = {"threads": 8, "mem_mb": 64000, "minutes": 10, "minutes_per_gb": 0.5}
    assert Cluster(config).filter_runtime(640_000) == 330


def test_corpus_on_amd_uses_its_eval_partition(paper):
    config = copy.deepcopy(paper.config)
    config["corpus"]["platform"] = "amd"
    assert Cluster(config).corpus_resources(1)["slurm_partition"] == "small-g"


def test_demo_never_asks_for_a_gpu(demo):
    for size in ("s", "m", "l"):
        for stage in ("train", "eval"):
            res = demo.resources(stage, "tiny", size)
            assert (res["gres"], res["nodes"], res["slurm_partition"]) == ("", 1, "")
            # cpu_jobs (demo.yaml: one core per job; eval the schema's default); Slurm's CPUs are the threads
            assert (res["cpus_per_task"], res["mem_mb"]) == (1, 4000)
            assert demo.gpus(stage, "tiny", size) == 0
        assert demo.resources("train", "tiny", size)["mpi"] is None
        assert demo.resources(stage, "tiny", size)["expect_gpus"] == 0
        assert demo.threads("train", "tiny", size) == 1 and demo.threads("eval", "tiny", size) == 1
        assert demo.launch_command("tiny", size, "PY", "E.py") == "PY E.py"
        assert demo.omp_threads("tiny", size, 2) == 2 and demo.train_processes("tiny", size) == 1
        assert demo.resources("merge", "tiny", size) == {"slurm_partition": "", "cpus_per_task": 1, "mem_mb": 4000}
    assert demo.device("tiny") == "cpu"
    assert demo.resources("pack", "tiny") == {"slurm_partition": "", "cpus_per_task": 1, "mem_mb": 4000}
    assert demo.threads("pack", "tiny") == 1


def test_demo_corpus_stages_run_on_the_cpu_platform(demo):
    # demo.yaml sets no corpus.platform: the schema's default, cpu (partition null); one core a job
    assert demo.corpus_resources(1) == {"slurm_partition": "", "gres": "", "cpus_per_task": 1, "mem_mb": 8000,
                                        "tasks_per_gpu": 0, "expect_gpus": 0}


def test_gpu_stages_on_the_cpu_platform_ask_for_no_gpu(paper):
    """Explicit GPU counts on a CPU platform still give no GPU (nothing to allocate there)."""
    config = copy.deepcopy(paper.config)
    config["families"]["qwen3"]["platform"] = "cpu"
    cpu = Cluster(config)
    res = cpu.resources("train", "qwen3", "8b")
    assert (res["gres"], res["nodes"], res["mpi"], res["slurm_partition"]) == ("", 1, None, "small")
    assert cpu.gpus_per_node("train", "qwen3", "8b") == 0
    assert cpu.launch_command("qwen3", "8b", "PY", "E.py") == "PY E.py"
    assert cpu.resources("eval", "qwen3", "14b")["gres"] == ""


def test_single_gpu_training_is_one_plain_process(paper):
    config = copy.deepcopy(paper.config)
    config["families"]["qwen2.5"]["train_gpus"] = {"0.5b": 1}
    one = Cluster(config, workdir="/w")
    assert one.launch_command("qwen2.5", "0.5b", "PY", "E.py") == \
        f"bash -c '{CACHES}exec \"$@\"' medadapt-launch apptainer exec --nv --bind /w " \
        "containers/medadapt-cuda.sif bash -c 'exec \"$@\"' medadapt-container python E.py"
    config["platforms"]["nvidia"]["container"] = None
    assert Cluster(config).launch_command("qwen2.5", "0.5b", "PY", "E.py") == "PY E.py"
    assert one.resources("train", "qwen2.5", "0.5b")["gres"] == "gpu:1"
    # a size with no train_gpus entry gets one GPU on a GPU platform
    assert one.gpus("train", "qwen2.5", "1.5b") == 1


def test_by_wildcards_gives_snakemake_functions(paper):
    wc = types.SimpleNamespace(family="qwen3", size="8b")
    train = paper.by_wildcards("train")
    assert {k: f(wc) for k, f in train.items()} == paper.resources("train", "qwen3", "8b")
    pack = paper.by_wildcards("pack")  # the pack rule has no {size}
    assert {k: f(types.SimpleNamespace(family="qwen2.5")) for k, f in pack.items()} == \
        {"slurm_partition": "small", "cpus_per_task": 16, "mem_mb": 64000}


def test_unknown_stage_is_named(paper):
    with pytest.raises(ValueError, match=r"stage must be one of \['train', 'eval', 'pack', 'merge'\], got 'mcqa'"):
        paper.resources("mcqa", "qwen3", "8b")


def test_compute_on_cpu_keeps_the_allocation_but_computes_on_the_cpu(paper):
    """The test Slurm's stand-in GPUs: the job still asks for them, but runs on the CPU and does not
    check that it sees a GPU."""
    config = copy.deepcopy(paper.config)
    config["platforms"]["nvidia"]["compute_on_cpu"] = True
    fake = Cluster(config)
    res = fake.resources("train", "qwen2.5", "7b")
    assert (res["gres"], res["expect_gpus"], res["slurm_partition"]) == ("gpu:8", 0, "gpu-h100")
    assert fake.device("qwen2.5") == "cpu" and paper.device("qwen2.5") == "cuda"
    assert fake.resources("eval", "qwen2.5", "7b")["expect_gpus"] == 0
    # no GPU flag for the runtime when the GPUs are stand-ins
    assert f"medadapt-launch apptainer exec --bind {os.getcwd()} containers/medadapt-cuda.sif " in \
        fake.launch_command("qwen2.5", "7b", "python", "E.py")


def test_platform_env_is_expanded_in_a_shell_of_its_own(demo):
    """The env values are expanded where the command runs ($SLURM_NODEID of that node), and an unset
    variable is no error there, though Snakemake's own shell runs under `set -u`."""
    config = copy.deepcopy(demo.config)
    config["platforms"]["cpu"]["env"] = {"MEDADAPT_PROBE": 'node "$SLURM_NODEID" of $HOME'}
    cmd = Cluster(config).launch_command("tiny", "s", "printenv", "MEDADAPT_PROBE")
    env = {k: v for k, v in os.environ.items() if k != "SLURM_NODEID"} | {"HOME": "/h"}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], capture_output=True, text=True, env=env, check=True)
    assert out.stdout == 'node "" of /h\n'
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], capture_output=True, text=True,
                         env=env | {"SLURM_NODEID": "3"}, check=True)
    assert out.stdout == 'node "3" of /h\n'


def test_split_grid_selects_families_and_needs_the_corpus_from_elsewhere(paper):
    config = copy.deepcopy(paper.config)
    config["run_platforms"] = ["amd"]
    with pytest.raises(ConfigError, match=r"run_platforms: \['amd'\] leaves out corpus.platform 'nvidia': build the "
                                          r"corpus on the run that has that platform and set prebuilt_corpus"):
        Cluster(config)
    config["prebuilt_corpus"] = "finemed.parquet"
    Cluster(config)
    assert select_platforms(config) == ["qwen2.5"] and list(config["families"]) == ["qwen3"]
    config = copy.deepcopy(paper.config)
    config["run_platforms"] = ["cpu"]
    config["prebuilt_corpus"] = "x.parquet"
    with pytest.raises(ConfigError, match=r"run_platforms: \['cpu'\] selects no family"):
        Cluster(config)
    config = copy.deepcopy(paper.config)
    assert select_platforms(config) == [] and list(config["families"]) == ["qwen2.5", "qwen3"]


def test_gpu_job_that_sees_no_gpu_fails_before_its_stage(tmp_path, monkeypatch):
    """This machine has no GPU: a job placed on one fails at once and says why; the stage never runs."""
    from medadapt.runtime import Job, run_job

    ran = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    job = Job(rule="mcqa", resources={"expect_gpus": 2}, log=str(tmp_path / "x.log"))
    with pytest.raises(RuntimeError, match=r"rule mcqa: this job was given 2 GPU\(s\) per node but sees 0 "
                                           r"\(CUDA_VISIBLE_DEVICES=0,1; torch .* built for"):
        run_job(job, lambda: ran.append(1))
    assert ran == []
    run_job(Job(rule="mcqa", resources={"expect_gpus": 0}, log=str(tmp_path / "y.log")), lambda: ran.append(1))
    assert ran == [1]
    assert "rule mcqa wildcards={} host=" in (tmp_path / "y.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=0,1" in (tmp_path / "y.log").read_text()
