# `make run` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: run test lint demo venv clean bench e2e bench-peer screenshots compiled

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# The app's own modules compiled to bytecode, as pip compiles an installed package's: a fresh process (a run
# from the CLI, a worker, the server) then does not compile them again, even where PYTHONDONTWRITEBYTECODE is
# set. Only what changed is compiled again (~0.07 s when nothing did). Not app.py and pages/: Streamlit runs
# those from their source.
APP_PACKAGES := manage.py core connectors storage services jobs ui bench
compiled: $(STAMP)
	$(PY) -m compileall -q $(APP_PACKAGES) >/dev/null

run: compiled
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

demo: compiled
	$(PY) manage.py demo --profiles 5000 --if-empty
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

# Layer contracts (.importlinter) and lint (ruff.toml) first: drift fails before the tests run.
lint: compiled
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q

# Every page for each role on demo data (bench/screenshots.py), for the README and for review.
screenshots: $(STAMP)
	$(PY) manage.py screenshots --out docs/screenshots

# The benchmarks of docs/BENCHMARKS.md (JSON lines). Not the peer bench (its own target and venv), not the
# browser ones (app_load, screenshots: Chromium), not the helpers (bench/_*.py).
BENCHES := app_pages connectors enrichment enrichment_api exports profiles segments
bench: compiled
	for b in $(BENCHES); do $(PY) bench/$$b.py || exit 1; done

# Side by side with drt-core (bench/peer.py): drt and the profilers live in their own venv, never in $(VENV).
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
PEER_ARGS ?= --contacts 200000 --reps 2

$(BENCH_STAMP): bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench-peer: compiled $(BENCH_STAMP)
	$(PY) bench/peer.py $(PEER_ARGS)

clean:
	rm -rf $(VENV)
