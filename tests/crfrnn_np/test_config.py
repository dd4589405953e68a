"""config.py: every tuning constant is a positive integer with a paragraph in the module docstring, and
the sizes the docstring states hold."""
import re

import crfrnn_np.config as config

NAMES = [n for n in vars(config) if re.fullmatch(r"[A-Z][A-Z0-9_]+", n)]


def test_every_constant_is_documented_and_positive():
    assert len(NAMES) >= 12
    for name in NAMES:
        value = getattr(config, name)
        assert isinstance(value, int) and value > 0, name
        assert re.search(r"^``%s``$" % name, config.__doc__, re.M), "%s has no paragraph in the docstring" % name
    documented = re.findall(r"^``([A-Z][A-Z0-9_]+)``$", config.__doc__, re.M)
    assert sorted(documented) == sorted(NAMES)     # and no paragraph for a constant that is gone


def test_stated_sizes():
    # a FUSED softmax block of 21 classes stays below glibc's 128 KiB mmap threshold (10.5 KiB in float32)
    assert config.SOFTMAX_BLOCK * 21 * 4 == 10752 < 128 * 1024
    assert config.MAX_DIM >= 5                     # the CRF's bilateral features: x, y and three colours
    assert config.COL_BUFFER_BYTES == 64 * 2**20
    assert config.CPU_NUMBER_MIN_CHUNK >= config.CPU_MIN_CHUNK
