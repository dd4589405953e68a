"""cpu_kernel: cached on disk, GIL-free and compiled with ``noalias``; and the project's numba CPU kernels
keep the rules of the style guide (``cache=True``, no ``parallel=True``)."""
import numba
import numpy as np

from crfrnn_np import kernel
from crfrnn_np.kernel import cpu_kernel


@cpu_kernel
def double_into(x, out, lo, hi):
    for i in range(lo, hi):
        out[i] = 2.0 * x[i]


@numba.njit
def double_into_plain(x, out, lo, hi):
    for i in range(lo, hi):
        out[i] = 2.0 * x[i]


def test_range_kernel_runs_its_range_only():
    x, out = np.arange(6.0), np.full(6, -1.0)
    double_into(x, out, 1, 4)
    np.testing.assert_array_equal(out, [-1, 2, 4, 6, -1, -1])


def test_cached_gil_free_and_noalias():
    assert double_into.targetoptions.get("nogil") is True
    assert type(double_into._cache).__name__ == "FunctionCache"          # cache=True
    assert double_into._compiler.pipeline_class is kernel._NoAliasCompiler
    # the pipeline marks the array arguments noalias: compare the LLVM IR of an uncached twin (numba
    # cannot show the IR of a kernel loaded from its cache)
    twin = numba.njit(nogil=True, pipeline_class=kernel._NoAliasCompiler)(double_into.py_func)
    args = (np.zeros(2), np.zeros(2), 0, 2)
    twin(*args)
    double_into_plain(*args)
    ours = list(twin.inspect_llvm().values())[0].count("noalias")
    plain = list(double_into_plain.inspect_llvm().values())[0].count("noalias")
    assert ours > plain


def test_project_kernels_are_cached_and_not_parallel():
    from crfrnn_np.fused import meanfield
    from crfrnn_np.lattice import cpu, hash_table, simplex
    from crfrnn_np.layers import im2col, pool
    kernels = [(m.__name__, n, o) for m in (meanfield, cpu, hash_table, simplex, im2col, pool)
               for n, o in vars(m).items() if isinstance(o, numba.core.registry.CPUDispatcher)]
    assert len(kernels) > 30
    for module, name, dispatcher in kernels:
        assert type(dispatcher._cache).__name__ == "FunctionCache", "%s.%s is not cached" % (module, name)
        assert not dispatcher.targetoptions.get("parallel"), "%s.%s uses parallel=True" % (module, name)
