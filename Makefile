# The two commands a newcomer needs: `make demo` and `make test`. Both are safe to run twice.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-unit lint stack-up stack-down test-tools lock clean

# Create the virtual environment and install exactly what requirements/lock.txt pins.
$(STAMP): requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

stack-up: $(STAMP)
	$(BIN)/botwatch stack up

stack-down: $(STAMP)
	$(BIN)/botwatch stack down

## The main job: stack up, setup, a worker and the generator, then a summary.
demo: $(STAMP)
	$(BIN)/botwatch demo

# Peers the integration tests talk to (Debian packages), installed only when missing.
test-tools:
	@command -v kcat >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq kcat; \
	  else echo "kcat is missing: run 'sudo apt-get install kcat'"; exit 1; fi; }
	@command -v prometheus-alertmanager >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq prometheus-alertmanager; \
	  else echo "prometheus-alertmanager is missing: run 'sudo apt-get install prometheus-alertmanager'"; exit 1; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The whole test suite: lint, types, unit tests, then integration tests against the real stack.
test: $(STAMP) test-tools lint stack-up
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -m unit -q

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet "uv==0.13.9"
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  -o requirements/lock.txt

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
