"""A real single-node Slurm (Debian's slurm-wlm 22.05 + munge) started privately for a test: its
own config, ports, state and log directories under a temporary directory, so it runs beside any
other Slurm on the machine and stops without touching them.

The node declares more than the machine has (64 CPUs, 500 GB, 8 GPUs; `SlurmdParameters=
config_overrides`), so jobs sized like a cluster's get scheduled. GPUs are gres backed by character
devices (`/dev/fakegpuN`, the null device's numbers): Slurm sets CUDA_VISIBLE_DEVICES only for
devices, not for plain files. Partitions `cpu` (default), `nvidia` and `amd` share the node. Every
finished job is recorded by `jobcomp/filetxt` (partition, nodes, CPUs, memory, GPUs, exit code).

The config is also linked at Slurm's default path (/etc/slurm/slurm.conf), as on a real cluster: the
Snakemake Slurm plugin strips every SLURM_* variable, SLURM_CONF included, from a job's environment,
so `srun` inside a job finds its controller only there. A lock file keeps two test Slurms from
claiming that path at once; the link is removed at stop().

Needs root (CI runs as root): installs slurm-wlm and munge with apt-get when they are missing.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = {"slurmctld": "slurm-wlm", "munged": "munge"}
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
CPUS, MEM_MB, GPUS = 64, 512000, 8
PARTITIONS = ("cpu", "nvidia", "amd")

SLURM_CONF = """\
ClusterName=medadapt-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
MinJobAge=3600
KillWait=5
SchedulerParameters=sched_interval=2
NodeName={host} CPUs={cpus} Boards=1 SocketsPerBoard=2 CoresPerSocket={half} ThreadsPerCore=1 RealMemory={mem} Gres=gpu:{gpus} State=UNKNOWN
"""
GRES_CONF = "AutoDetect=off\nName=gpu File=/dev/fakegpu[0-{last}]\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def install() -> None:
    """Debian's packages, as a clean CI machine lacks them (root only)."""
    missing = [pkg for binary, pkg in PACKAGES.items() if not shutil.which(binary, path="/usr/sbin:/usr/bin")]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run("apt-get", "update", "-q", env=env)
        _run("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing, env=env)


def _munge() -> None:
    """munged as user munge (it refuses root); one munged serves every Slurm on the machine."""
    probe = subprocess.run(["munge", "-n"], capture_output=True)
    if probe.returncode == 0:
        return
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not Path("/etc/munge/munge.key").exists():
        _run("runuser", "-u", "munge", "--", "/usr/sbin/mungekey", "--create")
    _run("runuser", "-u", "munge", "--", "/usr/sbin/munged")
    for _ in range(50):
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("munged did not come up")


class SlurmCluster:
    """start() / stop() a private Slurm under `root`; `env` is what its clients (sbatch, squeue,
    snakemake) need."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._daemons: list[subprocess.Popen] = []
        self._lock = None

    def _claim_default_conf(self) -> None:
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(DEFAULT_CONF.parent / ".medadapt-test.lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # waits for another test Slurm to finish
        if DEFAULT_CONF.is_symlink():  # left by a killed test (we hold the lock: no test Slurm runs)
            DEFAULT_CONF.unlink()
        elif DEFAULT_CONF.exists():
            raise RuntimeError(f"{DEFAULT_CONF} exists: this machine has a Slurm of its own, whose default "
                               "configuration the test Slurm would take over")
        DEFAULT_CONF.symlink_to(self.conf)

    def start(self, timeout: float = 60) -> "SlurmCluster":
        install()
        _munge()
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(GPUS):
            dev = Path(f"/dev/fakegpu{i}")
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a character device, like /dev/null
        text = SLURM_CONF.format(host=self.host, root=self.root, ctld_port=_free_port(), d_port=_free_port(),
                                 cpus=CPUS, half=CPUS // 2, mem=MEM_MB, gpus=GPUS)
        text += "".join(f"PartitionName={p} Nodes={self.host} Default={'YES' if p == 'cpu' else 'NO'} "
                        "MaxTime=INFINITE State=UP\n" for p in PARTITIONS)
        self.conf.write_text(text)
        (self.root / "gres.conf").write_text(GRES_CONF.format(last=GPUS - 1))
        self._claim_default_conf()
        # -D: in the foreground, as our children, so that stop() ends exactly these daemons.
        for daemon in ("slurmctld", "slurmd"):
            log = open(self.root / "log" / f"{daemon}.out", "w")
            self._daemons.append(subprocess.Popen([f"/usr/sbin/{daemon}", "-D", "-f", str(self.conf)],
                                                  stdout=log, stderr=subprocess.STDOUT, env=self.env))
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env)
            if out.returncode == 0 and out.stdout.split() and all(s == "idle" for s in out.stdout.split()):
                return self
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the test Slurm did not come up: {(self.root / 'log' / 'slurmctld.log').read_text()[-2000:]}")

    def stop(self) -> None:
        for proc in reversed(self._daemons):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._daemons.clear()
        if self._lock:
            if DEFAULT_CONF.is_symlink() and Path(os.readlink(DEFAULT_CONF)) == self.conf:
                DEFAULT_CONF.unlink()
            self._lock.close()
            self._lock = None

    def jobs(self) -> list[dict]:
        """Slurm's own record of every finished job (jobcomp/filetxt: KEY=VALUE fields per line)."""
        path = self.root / "log" / "jobcomp.txt"
        if not path.exists():
            return []
        return [dict(field.split("=", 1) for field in line.split() if "=" in field)
                for line in path.read_text().splitlines() if line.strip()]

    def show_job(self, job_id: str) -> dict:
        """`scontrol show job` as a dict (kept for MinJobAge after the job ends)."""
        out = _run("scontrol", "show", "job", str(job_id), env=self.env).stdout
        return dict(field.split("=", 1) for field in out.split() if "=" in field)

    def running(self, name_part: str = "") -> list[dict]:
        out = _run("squeue", "-h", "-o", "%i|%j|%T|%k", env=self.env).stdout
        rows = [dict(zip(("id", "name", "state", "comment"), line.split("|"))) for line in out.splitlines()]
        return [r for r in rows if name_part in r["comment"] or name_part in r["name"]]
