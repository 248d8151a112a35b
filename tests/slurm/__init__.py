"""A real Slurm of one or more nodes (Debian's slurm-wlm 22.05 + munge) started privately for a test: its
own config, ports, state and log directories under a temporary directory, so it runs beside any
other Slurm on the machine and stops without touching them.

Each node declares more than the machine has (64 CPUs, 500 GB, 8 GPUs; `SlurmdParameters=
config_overrides`), so jobs sized like a cluster's get scheduled. GPUs are gres backed by character
devices (`/dev/fakegpuN`, the null device's numbers): Slurm sets CUDA_VISIBLE_DEVICES only for
devices, not for plain files. Partitions `cpu` (default), `nvidia` and `amd` share the nodes. Every
finished job is recorded by `jobcomp/filetxt` (partition, nodes, CPUs, memory, GPUs, exit code).

The config is also linked at Slurm's default path (/etc/slurm/slurm.conf), as on a real cluster: the
Snakemake Slurm plugin strips every SLURM_* variable, SLURM_CONF included, from a job's environment,
so `srun` inside a job finds its controller only there. A lock file keeps two test Slurms from
claiming that path at once; the link is removed at stop().

`SlurmCluster(root, nodes=2)` gives a Slurm of two nodes on this one machine, each its own network
namespace and host name: slurmctld, munged and the clients stay in the machine's own namespace; a
Linux bridge there (with the controller's address) links one veth pair per node namespace, whose
inner end is the node's `eth0`. One slurmd runs per namespace, entered with `nsenter --net` plus a
UTS namespace of its own (`hostname` is the node's name, which slurmd and every job step inherit);
not `ip netns exec`, which remounts /sys and hides the cgroup filesystem slurmd reads. The nodes'
names are added to /etc/hosts (tagged lines, removed at stop) so that a job resolves its peers by
name, as on a cluster. The file system and munged's socket are shared: a job on a node sees the
same paths as the test. Every job runs inside a node namespace, so a multi-node job's processes
talk over the bridge as over a cluster's network (not over loopback).

Needs root (CI runs as root): installs slurm-wlm, munge and iproute2 with apt-get when they are
missing.
"""
from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = {"slurmctld": "slurm-wlm", "munged": "munge", "ip": "iproute2"}
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
HOSTS = Path("/etc/hosts")
NETNS = Path("/var/run/netns")  # where `ip netns add` keeps a namespace (nsenter enters it from there)
CPUS, MEM_MB, GPUS = 64, 512000, 8  # per node
PARTITIONS = ("cpu", "nvidia", "amd")
# The nodes' network (several nodes only): a private subnet that start() checks nothing on this
# machine uses, and names of our own. They are fixed, not per test, so that the next start (holding
# the lock, see _claim_default_conf) removes what a killed test left behind by name.
SUBNET = ipaddress.ip_network("10.77.0.0/24")
BRIDGE, VETH, NODE_PREFIX = "medtbr0", "medtv", "medn"
IFNAME = "eth0"  # each node's interface inside its namespace: what GLOO_SOCKET_IFNAME etc. name
HOSTS_TAG = "# medadapt-test-slurm"

SLURM_CONF = """\
ClusterName=medadapt-test
SlurmctldHost={ctld_host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
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
"""
NODE = ("NodeName={name}{addr} CPUs={cpus} Boards=1 SocketsPerBoard=2 CoresPerSocket={half} ThreadsPerCore=1 "
        "RealMemory={mem} Gres=gpu:{gpus} State=UNKNOWN\n")
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
    """munged as user munge (it refuses root); one munged serves every Slurm on the machine (and
    every node namespace: its socket is a file)."""
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


def _subnet_users() -> list[str]:
    """Addresses and routes of this machine's namespace inside SUBNET (the default route aside)."""
    found = []
    for link in json.loads(_run("ip", "-j", "-4", "addr").stdout):
        found += [f"{link['ifname']}: {a['local']}" for a in link.get("addr_info", [])
                  if ipaddress.ip_address(a["local"]) in SUBNET]
    for route in json.loads(_run("ip", "-j", "-4", "route").stdout):
        if route["dst"] != "default" and ipaddress.ip_network(route["dst"], strict=False).overlaps(SUBNET):
            found.append(f"route {route['dst']} dev {route.get('dev')}")
    return found


class SlurmCluster:
    """start() / stop() a private Slurm of `nodes` nodes under `root`; `env` is what its clients
    (sbatch, squeue, snakemake) need. One node: this machine itself, under its own name. Several:
    `medn1`, `medn2`... in network namespaces (module docstring)."""

    def __init__(self, root: Path, nodes: int = 1):
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.nodes = [self.host] if nodes == 1 else [f"{NODE_PREFIX}{i}" for i in range(1, nodes + 1)]
        # node -> its address (several nodes: hosts 11, 12... of SUBNET; the bridge has host 1)
        self.addresses = {} if nodes == 1 else {n: str(SUBNET[10 + i]) for i, n in enumerate(self.nodes, 1)}
        self.ifname = IFNAME if nodes > 1 else None
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._daemons: list[subprocess.Popen] = []
        self._lock = None

    @property
    def multi(self) -> bool:
        return len(self.nodes) > 1

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

    def _write_conf(self) -> None:
        if self.multi:
            # slurmctld listens on every address of this namespace; the nodes reach it on the bridge's.
            ctld_host = f"{self.host}({SUBNET[1]})"
            nodes = "".join(NODE.format(name=n, addr=f" NodeAddr={a}", cpus=CPUS, half=CPUS // 2, mem=MEM_MB,
                                        gpus=GPUS) for n, a in self.addresses.items())
        else:
            ctld_host = self.host
            nodes = NODE.format(name=self.host, addr="", cpus=CPUS, half=CPUS // 2, mem=MEM_MB, gpus=GPUS)
        text = SLURM_CONF.format(ctld_host=ctld_host, root=self.root, ctld_port=_free_port(), d_port=_free_port())
        text += nodes
        text += "".join(f"PartitionName={p} Nodes={','.join(self.nodes)} Default={'YES' if p == 'cpu' else 'NO'} "
                        "MaxTime=INFINITE State=UP\n" for p in PARTITIONS)
        self.conf.write_text(text)
        (self.root / "gres.conf").write_text(GRES_CONF.format(last=GPUS - 1))

    def start(self, timeout: float = 60) -> "SlurmCluster":
        install()
        _munge()
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(GPUS):  # one set serves every node: Slurm only checks that the files are devices
            dev = Path(f"/dev/fakegpu{i}")
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a character device, like /dev/null
        self._write_conf()
        self._claim_default_conf()
        try:
            if self.multi:
                self._network_up()
            self._start_daemons()
            self._wait_idle(timeout)
        except BaseException as exc:
            logs = sorted((self.root / "log").glob("*.log"))
            self.stop()  # also on Ctrl-C: no daemons, namespaces or hosts lines left behind
            if not isinstance(exc, Exception):
                raise
            raise RuntimeError(f"the test Slurm did not come up ({exc}):\n" + "\n".join(
                f"== {p.name}\n{p.read_text()[-1500:]}" for p in logs)) from exc
        return self

    def _start_daemons(self) -> None:
        # -D: in the foreground, as our children, so that stop() ends exactly these daemons.
        def spawn(name: str, cmd: list[str]) -> None:
            log = open(self.root / "log" / f"{name}.out", "w")
            self._daemons.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env))

        for node in self.nodes:
            (self.root / "spool" / node).mkdir(exist_ok=True)
        spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-f", str(self.conf)])
        if not self.multi:
            spawn("slurmd", ["/usr/sbin/slurmd", "-D", "-f", str(self.conf)])
            return
        for node in self.nodes:
            # In the node's network namespace and a UTS namespace of its own named after the node
            # (slurmd finds its NodeName by host name; its job steps inherit both). `exec`: the
            # Popen is slurmd itself, so that stop() signals it.
            spawn(f"slurmd-{node}", ["nsenter", f"--net={NETNS / node}", "unshare", "--uts", "sh", "-c",
                                     f"hostname {node} && exec /usr/sbin/slurmd -D -N {node} -f {self.conf}"])

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, env=self.env)
            states = dict(line.split() for line in out.stdout.splitlines()) if out.returncode == 0 else {}
            if set(states) == set(self.nodes) and all(s == "idle" for s in states.values()):
                return
            if any(p.poll() is not None for p in self._daemons):
                raise RuntimeError("a Slurm daemon exited")
            time.sleep(1)
        raise TimeoutError(f"nodes not idle after {timeout} s")

    # --- the nodes' network (several nodes) -------------------------------------------------------
    def _network_up(self) -> None:
        self._network_down()  # what a killed test left (same names; we hold the lock)
        taken = _subnet_users()
        if taken:
            raise RuntimeError(f"{SUBNET} is in use on this machine ({', '.join(taken)}): the test Slurm's "
                               "nodes need a subnet of their own")
        prefix = SUBNET.prefixlen
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{SUBNET[1]}/{prefix}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        for i, (node, addr) in enumerate(self.addresses.items(), 1):
            _run("ip", "netns", "add", node)
            _run("ip", "link", "add", f"{VETH}{i}", "type", "veth", "peer", "name", IFNAME, "netns", node)
            _run("ip", "link", "set", f"{VETH}{i}", "master", BRIDGE, "up")
            _run("ip", "-n", node, "addr", "add", f"{addr}/{prefix}", "dev", IFNAME)
            _run("ip", "-n", node, "link", "set", IFNAME, "up")
            _run("ip", "-n", node, "link", "set", "lo", "up")  # torchrun's workers talk to their agent on it
        text = HOSTS.read_text()
        with open(HOSTS, "a") as fh:  # appended in place: /etc/hosts may be a bind mount
            fh.write("" if text.endswith("\n") or not text else "\n")
            fh.writelines(f"{addr} {node} {HOSTS_TAG}\n" for node, addr in self.addresses.items())

    def _network_down(self) -> None:
        """Remove our namespaces, veth pairs, bridge and hosts lines, whatever the node count of the
        test that made them (each only if there, and only by our names)."""
        ours = re.compile(rf"({re.escape(VETH)}|{re.escape(NODE_PREFIX)})\d+")
        for link in Path("/sys/class/net").iterdir():
            if ours.fullmatch(link.name):  # deleting the outer end deletes the pair
                subprocess.run(["ip", "link", "del", link.name], capture_output=True)
        for ns in NETNS.glob(f"{NODE_PREFIX}*"):
            if ours.fullmatch(ns.name):
                subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        lines = HOSTS.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.rstrip().endswith(HOSTS_TAG)]
        if kept != lines:
            with open(HOSTS, "r+") as fh:  # rewritten in place (a bind mount cannot be replaced)
                fh.write("".join(kept))
                fh.truncate()

    def stop(self) -> None:
        for proc in reversed(self._daemons):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._daemons.clear()
        if self._lock:
            try:
                if self.multi:
                    self._network_down()
            finally:
                if DEFAULT_CONF.is_symlink() and Path(os.readlink(DEFAULT_CONF)) == self.conf:
                    DEFAULT_CONF.unlink()
                self._lock.close()
                self._lock = None

    def in_node(self, node: str) -> list[str]:
        """The prefix that runs a command in `node`'s network namespace (as its jobs, host name aside)."""
        return ["nsenter", f"--net={NETNS / node}"]

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
