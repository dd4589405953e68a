"""The lattice hash table: key packing into 63-bit words, insertion and lookup."""
import numpy as np

from crfrnn_np.lattice.hash_table import key_packing


def test_key_packing_fields():
    """Fields of ``width = bit_length(range + margins)`` bits fill a word before the next one starts."""
    origin, word, shift, words = key_packing(np.array([-10, 0, 5]), np.array([10, 1000, 6]), 3)
    np.testing.assert_array_equal(origin, [-15, -5, 0])
    np.testing.assert_array_equal(word, [0, 0, 0])
    np.testing.assert_array_equal(shift, [0, 5, 5 + 10])     # widths: 31 -> 5 bits, 1011 -> 10 bits
    assert words == 1
    *_, words = key_packing(np.zeros(6, np.int64), np.full(6, 2 ** 20), 6)
    assert words == 2
