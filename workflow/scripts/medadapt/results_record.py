"""Which config made a results directory, so that no output of one config is taken for another's.

Snakemake reruns a job whose recorded params changed, but only where it holds metadata for the
job's outputs (its `.snakemake` directory, beside the working directory). A results directory
copied from elsewhere (another checkout, another cluster) has none: every output in it looks up to
date, whatever config made it. So each run records its study settings (the config without run
knobs, `medadapt.settings.study_config`) in `<results>/.medadapt-config.json` when it starts, and
notes in the working directory's `.snakemake/medadapt/` that its metadata covers that results
directory. A later invocation whose study settings differ from the record proceeds only where that
note exists (Snakemake's own triggers then rerun what changed); otherwise it stops and names the
differing keys, unless `accept_foreign_results: true`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from medadapt.io import write_json
from medadapt.settings import config_differences, digest, study_config

RECORD = ".medadapt-config.json"
# Keys named in the error at most (a changed family grid can differ in hundreds).
SHOWN = 30


class ForeignResults(ValueError):
    pass


def record_path(results: str | os.PathLike) -> Path:
    return Path(results) / RECORD


def marker_path(results: str | os.PathLike, workdir: str | os.PathLike = ".") -> Path:
    """This working directory's note that its Snakemake metadata covers `results` (by real path:
    the same directory reached by another name is the same directory)."""
    key = hashlib.sha256(os.path.realpath(results).encode()).hexdigest()[:24]
    return Path(workdir) / ".snakemake" / "medadapt" / f"results-{key}.json"


def settings_of(config: dict, derived: dict | None = None) -> dict:
    """What the record holds: the study settings, and `derived` (what the hardware settings, run
    knobs themselves, make of the computation, e.g. each run's device and training processes)."""
    return {**study_config(config), **({"derived": derived} if derived else {})}


def check(config: dict, results: str | os.PathLike, accept: bool = False,
          workdir: str | os.PathLike = ".", derived: dict | None = None) -> list[str]:
    """The study-setting keys in which `config` differs from the record of `results` ([] where
    there is no record, or none differ). Raises ForeignResults where they differ and this working
    directory's metadata does not cover `results`, unless `accept`."""
    path = record_path(results)
    if not path.exists():
        return []  # nothing recorded (a fresh directory, or one made before records existed)
    try:
        recorded = json.loads(path.read_text())["settings"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ForeignResults(f"{path}: not a results record ({exc}); delete it to start over") from None
    differing = config_differences(recorded, settings_of(config, derived))
    if not differing or accept or marker_path(results, workdir).exists():
        return differing
    sections = ", ".join(dict.fromkeys(key.split(".")[0] for key in differing))
    shown = ", ".join(differing[:SHOWN]) + (f" and {len(differing) - SHOWN} more" if len(differing) > SHOWN else "")
    raise ForeignResults(
        f"{path}: the results in {results} were made with another config, and this working "
        f"directory holds no Snakemake metadata for them (a copied results directory?), so "
        f"Snakemake cannot tell which outputs the difference touches. The config differs in the "
        f"sections {sections}; in the keys {shown}. "
        f"Use another `results` directory, or run with `--config accept_foreign_results=True` "
        f"to take the existing outputs as they are.")


def unrecorded(results: str | os.PathLike, workdir: str | os.PathLike = ".") -> bool:
    """Whether `results` holds outputs but no record, and this working directory never ran in it:
    outputs of an unknown config (e.g. copied from a run made before records existed)."""
    path = Path(results)
    return (path.is_dir() and not record_path(path).exists() and any(path.iterdir())
            and not marker_path(path, workdir).exists())


def write(config: dict, results: str | os.PathLike, workdir: str | os.PathLike = ".",
          derived: dict | None = None) -> None:
    """Record the run's study settings in `results` and note that this working directory's metadata
    covers it (at the start of a run, before any job writes an output)."""
    settings = settings_of(config, derived)
    record = {"digest": digest(settings), "settings": settings}
    write_json(record_path(results), record)
    marker = marker_path(results, workdir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"results": os.path.realpath(results), "digest": record["digest"]})
