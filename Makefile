# crfrnn-np: `make demo` and `make test` each create the environment first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all env test test-fast test-cudasim bench demo clean

all: test

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

env: $(STAMP)

# The whole suite, including the numba.cuda paths under the simulator (tests set NUMBA_ENABLE_CUDASIM
# themselves in a subprocess-free way through tests/conftest.py) and the anchor-based checks.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

test-cudasim: $(STAMP)
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q tests -m cudasim

bench: $(STAMP)
	$(BIN)/pip install -q 'torch==2.13.0'
	$(BIN)/python -m bench

demo: $(STAMP)
	$(BIN)/crfrnn demo

clean:
	rm -rf $(VENV) build *.egg-info out
