# The two quick-start commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(BIN)/ometria-sync demo config/example.toml

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check ometria_sync tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench

clean:
	rm -rf $(VENV) config/state state .pytest_cache .mypy_cache .ruff_cache
