# Two commands on a fresh machine: `make demo` (the whole workflow on the tiny default) and
# `make test` (unit tests + an end-to-end run of the demo). Each sets up .venv itself.
VENV ?= .venv
PY   := $(VENV)/bin/python
SMK  := $(VENV)/bin/snakemake
DEMO := --configfile config/demo.yaml --profile profiles/local

# No model hub here: everything is built locally. vLLM's CPU backend gets a small KV cache.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export VLLM_CPU_KVCACHE_SPACE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo report lint test test-unit dry-run clean-demo gpu-resolution

venv: $(VENV)/.medadapt-installed
$(VENV)/.medadapt-installed: requirements.txt .ci/setup-venv.sh .ci/constraints.txt pyproject.toml
	VENV=$(VENV) bash .ci/setup-venv.sh

demo: venv
	$(SMK) $(DEMO)
	$(SMK) $(DEMO) --report results/report.html
	@echo "demo done: results/report.html, figures in results/figures/"

# Rules lint-clean and formatted, the config reference in sync with the schema (each fails on findings).
lint: venv
	$(SMK) --lint --cores 1 2>&1 | tee /dev/stderr | grep -q "Congratulations"
	$(SMK) --lint --cores 1 --configfile config/demo.yaml 2>&1 | tee /dev/stderr | grep -q "Congratulations"
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(VENV)/bin/medadapt config-docs --check

test: lint
	$(PY) -m pytest -ra

test-unit: venv
	$(PY) -m pytest -ra -m "not e2e"

dry-run: venv
	$(SMK) -n --quiet rules

# The CUDA set (requirements-gpu.txt) resolved against PyPI, nothing installed (minutes; network):
# rewrites requirements/gpu-resolution.txt.
gpu-resolution: venv
	bash .ci/gpu-resolution.sh $(PY)

clean-demo:
	rm -rf results .snakemake
