# coo-llm: `make run` starts the gateway, `make test` runs the whole test suite.
# Both work on a fresh Debian machine with python3: they create .venv and install what they need.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/config.yaml

# Debian packages the tests start for real (redis-server, webdis; chromium for the dashboard's
# browser test, driven by Playwright) and the benchmark uses (nginx, wrk: make test installs them
# too, for tests/test_bench_smoke.py).
TEST_DEBS  := redis-server webdis curl chromium
BENCH_DEBS := nginx wrk

.PHONY: run test check bench profile clean

# Debian's python3 lacks venv/ensurepip until python3-venv is installed: install it if needed.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); scripts/ensure-debs.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The admin API and dashboard (http://127.0.0.1:2906/admin/) are on with an admin key: $ADMIN_API_KEY,
# or, when it is unset, a random one made for this run and printed here (never logged by the gateway).
run: $(VENV)/.installed
	@key="$${ADMIN_API_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(18))')}"; \
	[ -n "$${ADMIN_API_KEY:-}" ] || echo "admin key for this run (set ADMIN_API_KEY to choose one): $$key"; \
	ADMIN_API_KEY="$$key" exec $(BIN)/coo-llm serve --config $(CONFIG)

check: $(VENV)/.installed
	$(BIN)/coo-llm check --config $(CONFIG)

test: $(VENV)/.installed-test
	@scripts/ensure-debs.sh $(TEST_DEBS) $(BENCH_DEBS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# BENCH_ARGS examples: --quick (smoke run), --rows direct,bare-proxy,memory-1w, --repeat 3,
# --save <short-desc> (also writes bench/results/<date>-<short-desc>.json and the memory row's
# flame graph to commit), --mock-port N (for an external gateway: TENSORZERO_URL=http://host:port).
# py-spy (the flame graph) comes with the test extras.
bench: $(VENV)/.installed-test
	@scripts/ensure-debs.sh $(BENCH_DEBS) redis-server
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Writes bench/results/profile-<row>.svg (flame graph) and .md (summary); BENCH_ARGS: --row, --seconds.
profile: $(VENV)/.installed-test
	@scripts/ensure-debs.sh $(BENCH_DEBS) redis-server
	$(BIN)/python -m bench.profile $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
