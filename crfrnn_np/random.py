"""The engine's random number stream (Caffe's ``Caffe::rng``).

Fillers and stochastic layers (Dropout) draw from one NumPy ``Generator``. :func:`set_seed` re-seeds it, as
Caffe's ``Caffe::set_random_seed`` does for ``random_seed`` in a solver. The streams differ from Caffe's boost
mt19937, so filled values are not bit-identical to Caffe's; tests only use fillers for random data.
"""
import numpy as np

_rng = np.random.default_rng(1701)


def rng():
    """The shared ``numpy.random.Generator``."""
    return _rng


def set_seed(seed):
    """Re-seed the shared generator (a negative seed means: from the operating system's entropy)."""
    global _rng
    _rng = np.random.default_rng(None if seed is None or seed < 0 else int(seed))


def get_state():
    """Snapshot of the generator state (for exact resume)."""
    return _rng.bit_generator.state


def set_state(state):
    _rng.bit_generator.state = state
