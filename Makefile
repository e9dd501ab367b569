# Two commands matter on a fresh machine: `make run` and `make test`. Both build .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint test-postgres bench bench-quick bench-size clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# `make run PORT=8081 HOST=0.0.0.0` to listen elsewhere (the environment's HOST and PORT,
# which some shells and platforms set, are not read).
HOST = 127.0.0.1
PORT = 8080

run: $(STAMP)
	@$(BIN)/certapi serve --demo --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/pytest

# ruff (pyflakes, pycodestyle, bugbear, isort, pyupgrade) and mypy, configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The whole suite again on a throwaway PostgreSQL 15 server (started and removed here).
test-postgres: $(STAMP)
	.ci/postgres.sh run $(BIN)/pytest

# The load benchmark against the FastAPI reference (bench/run.py; not part of `make test`).
# `make bench-quick` is a small database and short phases; BENCH_ARGS passes options.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: $(BENCH_STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick:
	$(MAKE) bench BENCH_ARGS="--quick $(BENCH_ARGS)"

# List pages and stats on 1,000,000 enrollments, one client (bench/size.py; seeding takes
# a while: BENCH_ARGS="--keep-at /some/dir/m1.db" keeps the database, --database-url reuses it).
bench-size: $(BENCH_STAMP)
	$(BIN)/python -m bench.size $(BENCH_ARGS)

clean:
	rm -rf $(VENV) certapi.db certapi.db-shm certapi.db-wal certapi.db.lock certapi.db-ratelimit* certapi.db-idempotency.lock
