"""Backend availability: the simulator counts as a CUDA backend, and a missing one is a BackendError that
says what to do."""
import pytest

from crfrnn_np import BackendError, Error, backend


def test_simulator_counts_as_cuda(monkeypatch):
    pytest.importorskip("numba.cuda")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    assert backend.cuda_available()
    backend.check_cuda()                          # no error


def test_missing_cuda_is_a_backend_error(monkeypatch):
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    with pytest.raises(BackendError, match="backend='cpu'.*NUMBA_ENABLE_CUDASIM=1") as info:
        backend.check_cuda()
    assert isinstance(info.value, Error) and "\n" not in str(info.value)


def test_real_gpu_present_never_under_the_simulator(monkeypatch):
    from crfrnn_np import backend
    monkeypatch.setattr(backend, "cuda_available", lambda: True)
    monkeypatch.setattr(backend, "simulator_on", lambda: True)
    assert not backend.real_gpu_present()
    monkeypatch.setattr(backend, "simulator_on", lambda: False)
    assert backend.real_gpu_present()
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    assert not backend.real_gpu_present()
