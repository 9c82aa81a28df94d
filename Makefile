# metamon-sp: every target installs what it needs (venv, torch CPU, Python deps, Showdown).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch 2.13.0 first: on our machines it resolves to the local CPU wheel; a later `torch>=2.13`
# range is then already satisfied (an unpinned install would pull a multi-GB CUDA build).
TORCH  ?= torch==2.13.0

.PHONY: help install showdown run serve test test-unit test-integration test-e2e bench clean

help:
	@echo "make run     - install everything, then the default pipeline: generation 0 + 2 self-play"
	@echo "               generations of the tiny CPU model (Prefect flow), ratings and report"
	@echo "make serve   - a local Prefect server + the served selfplay/gen1 deployment"
	@echo "make test    - install everything, then run unit + integration + end-to-end tests"
	@echo "make bench   - collection throughput benchmark"

# --no-compile: Python compiles what it imports on first use; byte-compiling every installed
# file up front cost ~16 s of a fresh set-up.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile $(TORCH)
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	touch $@

# then the decision path's modules compiled, where their sources changed (metamon_sp/compiled.py;
# instant when nothing did, ~1 min on 2 cores from nothing; METAMON_SP_COMPILED=0 skips it)
install: $(BIN)/.installed
	$(BIN)/python -m metamon_sp.compile

# Showdown's npm install needs only the system Python (stdlib) and Node, so it runs beside the
# venv's pip install: about 3 minutes less on a fresh machine. Either failing fails the target.
showdown:
	@$(PYTHON) -m metamon_sp.showdown & npm=$$!; \
	$(MAKE) --no-print-directory install; pip=$$?; wait $$npm && exit $$pip

run: showdown
	$(BIN)/python -m flows.selfplay $(ARGS)

serve: showdown
	$(BIN)/python -m deployments.serve --local $(ARGS)

test: showdown
	$(BIN)/python -m pytest -v --durations=15 tests $(ARGS)

test-unit: install
	$(BIN)/python -m pytest -q tests/unit $(ARGS)

test-integration: showdown
	$(BIN)/python -m pytest -v -m integration tests $(ARGS)

test-e2e: showdown
	$(BIN)/python -m pytest -v -m e2e tests $(ARGS)

bench: showdown
	$(BIN)/python benchmarks/collect_throughput.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache metamon_sp/_compiled
