# Two commands set everything up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   ?= data/synthetic
RUNS   ?= runs/demo
DEMO_VIDEOS ?= 240

.PHONY: demo test test-slow bench venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m datasets.synthetic --out $(DATA) --videos $(DEMO_VIDEOS) --seed 0
	$(PY) -m splits compositional --labels $(DATA)/something-something-v2-labels.json \
	    --train $(DATA)/something-something-v2-train.json --val $(DATA)/something-something-v2-validation.json \
	    --boxes $(DATA)/annotations.json --out $(DATA)/splits/compositional --seed 0
	$(PY) -m splits shuffled --from $(DATA)/splits/compositional --out $(DATA)/splits/shuffled --seed 0
	$(PY) -m splits validate $(DATA)/splits/compositional
	$(PY) -m splits validate $(DATA)/splits/shuffled

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) data runs *.egg-info
