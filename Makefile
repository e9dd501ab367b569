# Two commands matter on a fresh machine: `make run` and `make test`. Both build .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/certapi serve --demo

test: $(STAMP)
	$(BIN)/pytest

# The whole suite again on a throwaway PostgreSQL 15 server (started and removed here).
test-postgres: $(STAMP)
	.ci/postgres.sh run $(BIN)/pytest

clean:
	rm -rf $(VENV) certapi.db certapi.db-shm certapi.db-wal
