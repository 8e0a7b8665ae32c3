# hvlab: `make demo` and `make test` bootstrap their own virtualenv (.venv) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB ?= examples/classroom-lab.yaml
# Bytecode caches on (some machines set PYTHONDONTWRITEBYTECODE=1): without them every pytest
# process rewrites the asserts of every test module again, 7 s of each run's collection here.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install promtool demo test check lint typecheck unit fast integration soak mutation \
	bench chaos ui-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# warm the bytecode caches (pytest's rewritten test modules too) once, not in each worker
	$(BIN)/python -m pytest -q --collect-only -p no:cacheprovider > /dev/null
	@$(MAKE) --no-print-directory promtool
	touch $(STAMP)

install: $(STAMP)

# promtool (Debian's `prometheus` package, which also installs the Prometheus server and its
# service) evaluates deploy/prometheus/alerts.yml in tests/deploy/test_alert_rules.py. Installed
# when missing and apt-get with root or password-less sudo is available; otherwise that test
# is skipped with the reason, and this target says why without failing.
promtool:
	@command -v promtool > /dev/null 2>&1 && exit 0; \
	if ! command -v apt-get > /dev/null 2>&1; then \
		echo "promtool: no apt-get here, the promtool alert rule test will be skipped"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2> /dev/null; then SUDO="sudo -n"; \
	else echo "promtool: apt-get needs root, the promtool alert rule test will be skipped"; \
		exit 0; fi; \
	$$SUDO apt-get install -y -q prometheus > /dev/null 2>&1 \
	|| { $$SUDO apt-get update -q > /dev/null 2>&1 \
		&& $$SUDO apt-get install -y -q prometheus > /dev/null 2>&1; } \
	|| echo "promtool: apt-get install prometheus failed, the promtool alert rule test will be skipped"

demo: $(STAMP)
	$(BIN)/hvlab demo $(LAB)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy hvlab workflows activities worker.py simulator starter

# Test tiers (pytest markers, set in tests/conftest.py): fast = in-process, no server or child
# process; integration = dev server, worker, fleet or CLI processes; soak = long randomized or
# repeated runs. Each test has a time limit by tier (pytest-timeout). Both cores are used
# (pytest-xdist, one file per worker so module fixtures and in-file order hold); soak tests load
# every core on purpose and run on their own, after the rest, with smaller counts than
# `make chaos` (doctor under load 20 runs instead of 50, client commands 15 instead of 200).
PYTEST := $(BIN)/python -m pytest -q
XDIST ?= -n auto --dist loadfile
SOAK_COUNTS := HVLAB_STABILITY_RUNS=20 HVLAB_CLI_RUNS=15

fast: $(STAMP)
	$(PYTEST) -m fast $(XDIST) --durations 10

integration: $(STAMP)
	$(PYTEST) -m integration $(XDIST) --durations 10

soak: $(STAMP)
	$(SOAK_COUNTS) $(PYTEST) -m soak --durations 10

# `make check` (about a minute): lint, types and the fast tier; what to run while you work.
check: lint typecheck fast

# `make test` (what CI runs): lint, types, then every test: fast and integration on both cores,
# then soak; the slowest tests are listed after each run.
unit: $(STAMP)
	$(PYTEST) -m "not soak" $(XDIST) --durations 25
	$(SOAK_COUNTS) $(PYTEST) -m soak --durations 10

test: lint typecheck unit

# `make mutation` (long: about 6,500 mutants; MODULES="hvlab.spec_check ..." for some): mutmut
# over the modules that carry the product's rules (pyproject's [tool.mutmut]) against the fast
# tier; prints the score per module (equivalents: bench/mutation_equivalents/), writes
# bench/results/mutation-latest.json, exits 1 below 80 %. Not part of `make test`.
mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/python bench/mutation.py $(foreach m,$(MODULES),--only $(m))

# `make bench` (~15 min) writes bench/results/bench-latest.json and BENCHMARKS.md;
# `make bench QUICK=1` is the few-minute version. Not part of `make test`.
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(if $(QUICK),--quick)

# `make chaos` (~20 min): the seed scenario 20 times while the worker is SIGKILLed (3 times a
# run) and the dev server restarted; end state and mutating commands checked after each run;
# then the soak tests at full count: 200 client-creating CLI commands in a row and 50 `hvlab
# doctor` runs against a detached dev stack, both under CPU load (make test runs 15 and 20).
# Writes bench/results/chaos-<time>.json and chaos-latest.json. Not part of `make test`.
CHAOS_RUNS ?= 20
CHAOS_SEED ?= 1
CHAOS_JOBS ?= 3
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --runs $(CHAOS_RUNS) --seed $(CHAOS_SEED) --jobs $(CHAOS_JOBS)
	HVLAB_CLI_RUNS=200 HVLAB_STABILITY_RUNS=50 HVLAB_GENERATED_CASES=300 $(PYTEST) -m soak \
		--durations 10 tests/badinput tests/runtime/test_dev_stack_cli.py

# `make ui-check` (~1 min, needs `apt-get install chromium`): headless Chromium shows that the
# Temporal Web UI decodes encrypted payloads through `hvlab codec-server` only once signed in.
# Screenshots in bench/results/ui-codec-*.png. Not part of `make test`.
ui-check: $(STAMP)
	$(BIN)/python bench/ui_codec_check.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
