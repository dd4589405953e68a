"""Every numba.cuda kernel of the project compiles to PTX for real GPUs (sm_80 and sm_90, float32 and float64).

The simulator never type-checks, so this is the only proof without a GPU that the kernels build. It needs
NVIDIA's compiler wheels (nvidia-cuda-nvrtc, nvidia-nvvm; in the ``test`` extra) and no driver: the only
driver call on the way, ``get_current_device`` when a kernel calls a ``numba.njit`` helper (numba compiles it
for the device then), is replaced by a device of the compute capability under test.

The kernels are found by scanning the package sources for ``@gpu_kernel`` (and importing those modules), so
a kernel added later is compiled here without anyone listing it; a ``cuda.jit`` outside the registry fails.
"""
import importlib
import os
import pathlib
import re
import subprocess
import sys
import types as pytypes

import pytest

from crfrnn_np.testing import run_under_simulator

COMPUTE_CAPABILITIES = ((8, 0), (9, 0))
HERE = pathlib.Path(__file__).resolve()


def _package_sources():
    """``[(module name, path)]`` of every .py file of every crfrnn_np package (editable or installed)."""
    out = []
    for pkg in ("crfrnn_np", "crfrnn_np.layers", "crfrnn_np.fused", "crfrnn_np.lattice", "crfrnn_np.proto",
                "crfrnn_np.tools"):                 # pyproject's packages (models holds no code)
        module = importlib.import_module(pkg)
        for path in sorted(pathlib.Path(module.__path__[0]).glob("*.py")):
            name = pkg if path.stem == "__init__" else "%s.%s" % (pkg, path.stem)
            out.append((name, path))
    return out


def _kernel_modules(decorator="gpu_kernel"):
    """Modules whose source declares at least one ``@gpu_kernel`` (or ``@gpu_device``), with how many."""
    found = {}
    for name, path in _package_sources():
        count = len(re.findall(r"^@%s\(" % decorator, path.read_text(), flags=re.M))
        if count:
            found[name] = count
    return found


def _simulator_on():
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def _kernels():
    from crfrnn_np.cuda_kernel import KERNELS
    for name in _kernel_modules():
        importlib.import_module(name)
    return KERNELS


def _device_functions():
    from crfrnn_np.cuda_kernel import DEVICE_FUNCTIONS
    for name in _kernel_modules("gpu_device"):
        importlib.import_module(name)
    return DEVICE_FUNCTIONS


KERNEL_NAMES = sorted(_kernels())
DEVICE_NAMES = sorted(_device_functions())


def test_no_cuda_jit_outside_the_registry():
    offenders = []
    for name, path in _package_sources():
        if name == "crfrnn_np.cuda_kernel":
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(^\s*@\s*(numba\.)?cuda\.jit\b)|((numba\.)?cuda\.jit\()", line):
                offenders.append("%s:%d: %s" % (path, lineno, line.strip()))
    assert not offenders, "numba.cuda kernels must be declared with @gpu_kernel:\n" + "\n".join(offenders)


def test_every_declared_kernel_is_registered():
    kernels = _kernels()
    for module, count in _kernel_modules().items():
        registered = [k for k in kernels.values() if k.py_func.__module__ == module]
        assert len(registered) == count, (module, count, registered)
    # the lattice kernels at least; the list grows as layers move to the device
    assert {"crfrnn_np.lattice.cuda._embed_kernel", "crfrnn_np.lattice.cuda._splat_kernel",
            "crfrnn_np.lattice.cuda._blur_kernel", "crfrnn_np.lattice.cuda._slice_kernel"} <= set(kernels)
    devices = _device_functions()
    for module, count in _kernel_modules("gpu_device").items():
        assert len([d for d in devices.values() if d.py_func.__module__ == module]) == count, (module, count)
    assert "crfrnn_np.cuda_reduce.block_reduce" in devices


def test_signatures_cover_both_float_types():
    from crfrnn_np.cuda_kernel import F32, F64
    for kernel in list(_kernels().values()) + list(_device_functions().values()):
        for f in (F32, F64):
            assert kernel._signatures(f), "%s declares no signature for %s" % (kernel.name, f)


@pytest.mark.skipif(not _simulator_on(), reason="runs only when this process has the simulator on; the "
                    "compile tests below then run in a subprocess without it")
def test_ptx_outside_simulator():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=str(HERE.parents[2]))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.mark.skipif(_simulator_on(), reason="the simulator has no PTX compiler; test_ptx_outside_simulator runs "
                    "these in a subprocess without it")
@pytest.mark.parametrize("cc", COMPUTE_CAPABILITIES, ids=lambda cc: "sm_%d%d" % cc)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernel_compiles_to_ptx(name, cc, monkeypatch):
    from numba import cuda
    import numba.cuda.dispatcher as dispatcher
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: pytypes.SimpleNamespace(compute_capability=cc))
    kernel = _kernels()[name]
    signatures = kernel.signatures()
    assert len(signatures) >= 1
    for sig in signatures:
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
        assert ".target sm_%d%d" % cc in ptx, (name, sig)
        assert ".entry " in ptx or ".globl" in ptx


@pytest.mark.skipif(_simulator_on(), reason="the simulator has no PTX compiler; test_ptx_outside_simulator runs "
                    "these in a subprocess without it")
@pytest.mark.parametrize("cc", COMPUTE_CAPABILITIES, ids=lambda cc: "sm_%d%d" % cc)
@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_device_function_compiles_to_ptx(name, cc):
    """Device functions on their own, with each declared signature (the kernels above compile them with the
    types they really pass)."""
    from numba import cuda
    device = _device_functions()[name]
    for sig in device.signatures():
        ptx, _ = cuda.compile_ptx(device.py_func, sig, cc=cc, device=True)
        assert ".target sm_%d%d" % cc in ptx and ".func" in ptx, (name, sig)


@pytest.mark.cudasim
def test_launches_under_simulator_are_declared():
    """What runs is what is compiled: every launch of the lattice under the simulator has a declared type (the
    layers' launches: the tests/layers/test_*_cuda.py and test_blob_cuda.py)."""
    out = run_under_simulator([str(HERE.parent / "cudasim_launch_check.py")], ok="cudasim launches OK")
    for kernel in ("_embed_kernel", "_splat_kernel", "_blur_kernel", "_slice_kernel"):
        assert kernel in out
