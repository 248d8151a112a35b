"""A working directory of its own for every test that runs Snakemake on this checkout's workflow.

Snakemake keeps its metadata (which config made which output) in `.snakemake/` of the working
directory, and the configs write to `results/` relative to it. Run from the checkout, a test would
see the results and metadata of the user's own `make demo` (and find nothing to do). So tests run
`snakemake -s <checkout>/Snakefile -d <tmp>` in a temporary directory that links only the
checkout's read-only inputs (configs, profiles, the demo's resources, the workflow's task files).
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
# What the configs and profiles name by relative path; never results/ or .snakemake/.
LINKED = ("config", "profiles", "resources", "workflow")


def make_workdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if not (path / name).exists():
            (path / name).symlink_to(ROOT / name)
    return path


@contextlib.contextmanager
def temporary_workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="medadapt-wd-") as tmp:
        yield make_workdir(Path(tmp))


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]


def run_snakemake(workdir: Path, *args: str, timeout: int = 600, env=None) -> subprocess.CompletedProcess:
    """Snakemake in `workdir` (relative paths in args and configs resolve there)."""
    return subprocess.run(snakemake_command(workdir, *args), cwd=workdir, capture_output=True, text=True,
                          timeout=timeout, env=env)
