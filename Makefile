# crfrnn-np: `make demo` and `make test` each create the environment first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all env test test-fast test-cudasim gpu-check bench demo docs clean

all: test

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[test,plots]'
	touch $(STAMP)

env: $(STAMP)

# The whole suite, including the numba.cuda paths under the simulator (run in subprocesses that set
# NUMBA_ENABLE_CUDASIM=1) and the anchor-based checks. Two pytest workers share the two cores, so each
# runs its BLAS and numba kernels on one thread: oversubscribed threads make small GEMMs 100x slower.
TEST_THREADS := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
test: $(STAMP)
	$(TEST_THREADS) $(BIN)/python -m pytest -q -n 2 tests

test-cudasim: $(STAMP)
	$(TEST_THREADS) $(BIN)/python -m pytest -q tests -m cudasim

# On a machine with a CUDA GPU: the cuda extra, then bench/gpu_check.sh (every simulator check of the suite
# on the real device, the GPU-only tests, the GPU benchmark; the script says how to run it on a lent machine).
gpu-check: $(STAMP)
	$(BIN)/pip install -q -e '.[test,plots,cuda]'
	PYTHON=$(BIN)/python sh bench/gpu_check.sh

bench: $(STAMP)
	$(BIN)/pip install -q 'torch==2.13.0'
	$(BIN)/python -m bench

demo: $(STAMP)
	$(BIN)/crfrnn demo

# The pictures of docs/walkthrough.md, written into docs/figures/ (the walkthrough's code is run by make test).
docs: $(STAMP)
	$(BIN)/python docs/make_figures.py

clean:
	rm -rf $(VENV) build *.egg-info out
