# One Makefile for people and CI alike.
#   make demo   - the whole pipeline on the built-in tiny task, on CPU
#   make test   - the test suite (CPU)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# CPU machines take the local CPU build of torch; an unpinned torch pulls GBs of CUDA wheels.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test install lint format clean

$(VENV)/.installed: pyproject.toml
	@# bubblewrap isolates code_tests' sandbox (docs/security.md); optional, so a failure only warns.
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1)); } || \
	  echo "note: bubblewrap not installed; the code sandbox runs with weaker isolation (docs/security.md)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ssp run recipes/tiny.yaml

test: install
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf runs .pytest_cache
