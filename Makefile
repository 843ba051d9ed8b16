# Two entry points for a newcomer: `make run` (demo) and `make test` (everything).
# The interpreter matters for speed: a distribution's CPython (Debian's /usr/bin/python3.11 is
# built with PGO and LTO and links libpython statically) runs portico's request path about 20%
# faster than a plain source build such as pyenv's default. Prefer one when it is new enough
# and can make a venv; `make PYTHON=...` overrides.
PYTHON ?= $(or $(shell for p in /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 \
	python3; do if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys, venv, ensurepip; \
	sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then echo $$p; break; fi; done),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

# setup.py and the C file: the optional accelerator is rebuilt when either changes.
$(STAMP): pyproject.toml setup.py portico/protocols/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/portico demo

test: $(STAMP)
	$(BIN)/ruff check portico tests bench
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check portico tests bench

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
