# The two quick-start commands: `make demo` and `make test`. Both set up .venv first, from the
# lock file (exact versions, hashes checked by pip), so a fresh clone runs what CI tested.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LATEST := .venv-latest
LOCKER := .venv-lock
PIP_TOOLS := pip-tools==7.6.2
# A machine's pip settings (extra indexes, local wheel folders) must not change what is
# locked or installed: only the public index and the hashes in the lock count.
LOCK_ENV := PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS=
COMPILE := $(LOCK_ENV) $(LOCKER)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--all-build-deps --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: setup demo test lint lock upgrade-lock test-latest clean

setup: $(VENV)/.installed

# --clear: a changed lock gives a new environment, never the old one with new packages on top.
$(VENV)/.installed: pyproject.toml requirements-test.lock
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: setup
	$(BIN)/ometria-sync demo config/example.toml

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check ometria_sync tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench

# Bring both locks in line with pyproject.toml: a dependency added there is locked (with what
# it needs), one removed leaves, and every other pin stays where it is. `make upgrade-lock`
# moves every pin to the newest version the ranges allow. The runtime lock is cut from the test
# lock, so the two always agree on every package they share.
lock: $(LOCKER)/bin/pip-compile
	$(COMPILE) --extra test -o requirements-test.lock pyproject.toml
	cp requirements-test.lock requirements.lock
	$(COMPILE) -o requirements.lock pyproject.toml

upgrade-lock: $(LOCKER)/bin/pip-compile
	rm -f requirements-test.lock requirements.lock
	$(MAKE) lock

$(LOCKER)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCKER)
	$(LOCK_ENV) $(LOCKER)/bin/pip install --quiet $(PIP_TOOLS)

# The suite on the newest releases the ranges allow (not the lock): drift is seen here first.
test-latest:
	$(PYTHON) -m venv --clear $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip setuptools
	$(LATEST)/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	$(LATEST)/bin/pip list --format=freeze | grep -v '^ometria-sync' > $(LATEST)/versions.txt
	@echo "newest allowed versions: $(LATEST)/versions.txt"
	$(LATEST)/bin/pytest

clean:
	rm -rf $(VENV) $(LATEST) $(LOCKER) config/state state .pytest_cache .mypy_cache .ruff_cache
