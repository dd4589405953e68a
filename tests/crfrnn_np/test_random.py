"""The engine's shared random stream: seeding, state round trip, and what draws from it."""
import numpy as np

from crfrnn_np import random as crfrnn_random


def test_seed_reproduces_and_state_round_trips():
    crfrnn_random.set_seed(5)
    first = crfrnn_random.rng().random(4)
    crfrnn_random.set_seed(5)
    np.testing.assert_array_equal(crfrnn_random.rng().random(4), first)
    np.testing.assert_array_equal(first, np.random.default_rng(5).random(4))   # a plain numpy Generator
    state = crfrnn_random.get_state()
    ahead = crfrnn_random.rng().random(3)
    crfrnn_random.set_state(state)
    np.testing.assert_array_equal(crfrnn_random.rng().random(3), ahead)


def test_negative_seed_draws_from_the_system():
    crfrnn_random.set_seed(-1)
    a = crfrnn_random.rng().integers(0, 2**62)
    crfrnn_random.set_seed(-1)
    b = crfrnn_random.rng().integers(0, 2**62)
    assert a != b                                  # 2^-62 odds of a false failure


def test_fillers_draw_from_the_shared_stream():
    from crfrnn_np.testing import make_layer
    snippet = ('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
               'inner_product_param { num_output: 2 weight_filler { type: "uniform" } } }')
    crfrnn_random.set_seed(11)
    a = make_layer(snippet, [np.zeros((1, 3))])[0].blobs[0].data.copy()
    crfrnn_random.set_seed(11)
    b = make_layer(snippet, [np.zeros((1, 3))])[0].blobs[0].data
    c = make_layer(snippet, [np.zeros((1, 3))])[0].blobs[0].data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
