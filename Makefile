# Two entry points (see README): `make demo` and `make test`. Both create the virtual
# environment on first use from the project's own files (pyproject.toml + constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.flowad-installed

.PHONY: setup demo test lint bench-speed two-moons

$(STAMP): pyproject.toml benchmarks/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all,dev]" -e ./benchmarks
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/flowad demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/lint-imports
	$(BIN)/ruff check flowad tests benchmarks conftest.py

lint: $(STAMP)
	$(BIN)/ruff check flowad tests benchmarks conftest.py

bench-speed: $(STAMP)
	$(BIN)/flowad bench speed

two-moons: $(STAMP)
	$(BIN)/flowad bench two-moons --out results/two_moons
