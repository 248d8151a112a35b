#!/usr/bin/env bash
# Resolves requirements-gpu.txt (the CUDA set) against PyPI without installing anything, and writes
# the resolved `name==version` list to requirements/gpu-resolution.txt, so a change of any pin shows
# what the NVIDIA image would get. Needs only pip and the network (a few minutes: wheel metadata).
# Usage: .ci/gpu-resolution.sh [python]   (default: .venv/bin/python; the image's Python is 3.11 too)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
report=$(mktemp --suffix=.json)
trap 'rm -f "$report"' EXIT
# PyPI alone (pip's default index), as the image build sees it: no pip configuration of this
# machine (local wheel directories, extra indexes or constraints would change what resolves; a CPU
# torch wheel would win).
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
    "$PY" -m pip --disable-pip-version-check install --dry-run --ignore-installed --quiet \
    --report "$report" -r requirements-gpu.txt
"$PY" - "$report" requirements/gpu-resolution.txt <<'PY'
import json, platform, re, sys
report = json.load(open(sys.argv[1]))
# names as PyPI normalizes them (lm_eval -> lm-eval), so the list diffs cleanly against pins
pins = sorted(f"{re.sub(r'[-_.]+', '-', i['metadata']['name']).lower()}=={i['metadata']['version']}"
              for i in report["install"])
env = report.get("environment", {})
with open(sys.argv[2], "w") as out:
    out.write("# requirements-gpu.txt as pip resolves it (.ci/gpu-resolution.sh; do not edit by hand)\n")
    out.write(f"# python {env.get('python_full_version', platform.python_version())}, "
              f"{env.get('sys_platform', '')} {env.get('platform_machine', '')}, pip {report.get('pip_version', '')}\n")
    out.write("\n".join(pins) + "\n")
print(f"{len(pins)} packages -> {sys.argv[2]}")
PY
