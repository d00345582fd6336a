# The two commands of the README: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
PORT ?= 8000
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint tox bench bench-dynamic screenshot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,redis,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --url http://127.0.0.1:$(PORT)/
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python manage.py check --fail-level WARNING
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(VENV)/site
	$(BIN)/python -m pytest $(PYTEST_ARGS)

screenshot: $(STAMP)
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest tests/test_browser.py -q

# The code is laid out by hand (lines up to 100), not by `ruff format`: lint is
# `ruff check`, as `make test` runs it.
lint: $(STAMP)
	$(BIN)/ruff check .

tox: $(STAMP)
	$(BIN)/pip install --quiet 'tox>=4'
	$(BIN)/tox $(TOX_ARGS)

# `make bench`: its own venv (bench/.venv) with the test extras and the bench-only peer
# (bench/requirements.txt), then every benchmark in one run; see bench/README.md.
BENCH_VENV ?= bench/.venv
BENCH_BIN := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/pip install --quiet --upgrade pip
	$(BENCH_BIN)/pip install --quiet -e '.[test]' -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_BIN)/python -m bench.run $(BENCH_ARGS)

# `make bench-dynamic`: its own venv (bench/dynamic/.venv) with the package and the dynamic-batching
# peers (bench/dynamic/requirements.txt: async-batcher, Ray Serve, dynamic-batcher), then the
# in-process bench and a short Redis bench (skipped without redis-server); bench/dynamic/README.md.
BENCH_DYNAMIC_VENV ?= bench/dynamic/.venv
BENCH_DYNAMIC_BIN := $(BENCH_DYNAMIC_VENV)/bin
BENCH_DYNAMIC_STAMP := $(BENCH_DYNAMIC_VENV)/.installed
BENCH_INPROCESS_ARGS ?=
BENCH_REDIS_ARGS ?= --items 1000 --workers 1 2 --bound 10

$(BENCH_DYNAMIC_STAMP): pyproject.toml bench/dynamic/requirements.txt
	$(PYTHON) -m venv $(BENCH_DYNAMIC_VENV)
	$(BENCH_DYNAMIC_BIN)/pip install --quiet --upgrade pip
	$(BENCH_DYNAMIC_BIN)/pip install --quiet -e '.[redis]' -r bench/dynamic/requirements.txt
	touch $(BENCH_DYNAMIC_STAMP)

bench-dynamic: $(BENCH_DYNAMIC_STAMP)
	$(BENCH_DYNAMIC_BIN)/python bench/dynamic/bench_inprocess.py $(BENCH_INPROCESS_ARGS)
	@if command -v redis-server >/dev/null; then \
		$(BENCH_DYNAMIC_BIN)/python bench/dynamic/bench_redis.py $(BENCH_REDIS_ARGS); \
	else echo "bench_redis.py skipped: no redis-server on PATH"; fi

clean:
	rm -rf $(VENV) .tox build *.egg-info db.sqlite3
