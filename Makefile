# hvlab: `make demo` and `make test` bootstrap their own virtualenv (.venv) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB ?= examples/classroom-lab.yaml

.PHONY: install demo test lint typecheck unit bench chaos ui-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hvlab demo $(LAB)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy hvlab workflows activities worker.py simulator starter

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# `make bench` (~15 min) writes bench/results/bench-latest.json and BENCHMARKS.md;
# `make bench QUICK=1` is the few-minute version. Not part of `make test`.
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(if $(QUICK),--quick)

# `make chaos` (~20 min): the seed scenario 20 times while the worker is SIGKILLed (3 times a
# run) and the dev server restarted; end state and mutating commands checked after each run;
# then 200 client-creating CLI commands in a row under CPU load (make test runs 30).
# Writes bench/results/chaos-<time>.json and chaos-latest.json. Not part of `make test`.
CHAOS_RUNS ?= 20
CHAOS_SEED ?= 1
CHAOS_JOBS ?= 3
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --runs $(CHAOS_RUNS) --seed $(CHAOS_SEED) --jobs $(CHAOS_JOBS)
	HVLAB_CLI_RUNS=200 $(BIN)/python -m pytest -q tests/badinput/test_cli_stability.py

# `make ui-check` (~1 min, needs `apt-get install chromium`): headless Chromium shows that the
# Temporal Web UI decodes encrypted payloads through `hvlab codec-server` only once signed in.
# Screenshots in bench/results/ui-codec-*.png. Not part of `make test`.
ui-check: $(STAMP)
	$(BIN)/python bench/ui_codec_check.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
