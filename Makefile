# webhook-router: `make run` serves on SQLite, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
WORKERS ?= 1
CHROMIUM ?= /usr/bin/chromium
PROMTOOL ?= /usr/bin/promtool

.PHONY: run test test-slow lint bench clean

$(BIN)/webhook-router: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: $(BIN)/webhook-router
	$(BIN)/webhook-router db upgrade
	$(BIN)/webhook-router topology sync
	$(BIN)/webhook-router serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: $(BIN)/webhook-router $(CHROMIUM) $(PROMTOOL)
	$(BIN)/pytest -m "not slow"

# The soak (10 minutes) and the long fault runs.
test-slow: $(BIN)/webhook-router
	$(BIN)/pytest -m slow -s

# The browser tests drive Debian's Chromium (never a downloaded browser).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "install Chromium at $(CHROMIUM) (browser tests)" >&2; exit 1; }
	apt-get install -y --no-install-recommends chromium \
	  || { apt-get update && apt-get install -y --no-install-recommends chromium; }

# promtool checks the alert rules and the metrics exposition (tests/deploy).
$(PROMTOOL):
	@command -v apt-get >/dev/null || { echo "install promtool at $(PROMTOOL) (tests/deploy)" >&2; exit 1; }
	apt-get install -y --no-install-recommends prometheus \
	  || { apt-get update && apt-get install -y --no-install-recommends prometheus; }

lint: $(BIN)/webhook-router
	$(BIN)/ruff check router consumers config tests bench
	$(BIN)/ruff format --check router consumers config tests bench
	$(BIN)/mypy

bench: $(BIN)/webhook-router
	$(BIN)/python bench/fanout.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache webhook-router.db*
