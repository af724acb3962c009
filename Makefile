# `make run`: the app and its scheduler sidecar on the local store, with demo data; Ctrl-C stops both.
# `make test`: ruff, mypy (core/ and storage/), then the whole test suite. Both create .venv from
# the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# pytest-xdist processes for `make test`, each given whole files (the files with most tests first)
TEST_WORKERS ?= 2

.PHONY: run test lint bench clean-venv

$(VENV)/.run-deps: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

run: $(VENV)/.run-deps
	$(PY) -m core init
	@$(PY) -m core.scheduler & scheduler=$$!; \
	trap 'kill -TERM $$scheduler 2>/dev/null; wait $$scheduler 2>/dev/null' EXIT INT TERM; \
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false

test: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

bench: $(VENV)/.dev-deps
	$(PY) bench/pipeline.py
	$(PY) bench/search.py
	$(PY) bench/page_reruns.py
	@if [ -x /usr/bin/chromium ]; then $(PY) bench/browser.py; \
	else echo "bench/browser.py skipped: it needs Debian's Chromium (apt-get install chromium)"; fi

clean-venv:
	rm -rf $(VENV)
