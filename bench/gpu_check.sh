#!/bin/sh
# Issue 10's checks on a machine with a CUDA GPU, in one command (about five to eight minutes on an H200):
#   1. every numba.cuda simulator check of the suite again on the real device, where atomics race for real
#      (tests/integration/test_cuda_on_gpu.py), the GPU-only lattice tests, and the PTX compile test;
#   2. the GPU benchmark (bench/bench_cuda.py: the CRF layer, the FCN part and the deploy net at 500 x 500,
#      against this machine's CPU in the same run).
# `make gpu-check` runs it in the project's environment with the cuda extra. On a lent machine whose image
# already holds numba-cuda, numpy, scipy, h5py, pillow, pytest and pytest-xdist (it cannot download), from
# the repository's root:
#   python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . && sh bench/gpu_check.sh
set -e
PYTHON=${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM
"$PYTHON" -c "from crfrnn_np.backend import real_gpu_present; import sys; sys.exit(0 if real_gpu_present() else 'gpu_check: numba.cuda finds no CUDA GPU here')"
"$PYTHON" -m pytest -q -rs -n "${GPU_CHECK_WORKERS:-4}" tests/integration/test_cuda_on_gpu.py \
    tests/lattice/test_cuda_build.py tests/lattice/test_lattice_cuda.py tests/crfrnn_np/test_cuda_kernel.py
"$PYTHON" -m bench.bench_cuda
