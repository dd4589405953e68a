"""The kernels' threads (crfrnn_np.threads): every work item once, in contiguous pieces; errors reach the
caller; a forked child can run kernels; and the multi-threaded drivers give bit-identical results."""
import multiprocessing

import numpy as np
import pytest

from crfrnn_np import threads
from crfrnn_np.testing import make_layer


def record(seen, lo, hi):
    seen.append((lo, hi))


@pytest.mark.parametrize("count, pieces", [(0, 3), (1, 3), (10, 3), (10, 1), (1000, 7)])
def test_every_item_once_in_contiguous_pieces(thread_count, count, pieces):
    thread_count(pieces)
    seen = []
    threads.parallel_for(record, count, seen)
    seen.sort()
    covered = [i for lo, hi in seen for i in range(lo, hi)]
    assert covered == list(range(count))
    assert len(seen) == max(1, min(pieces, count))


def test_grain_keeps_small_problems_on_one_thread(thread_count):
    thread_count(4)
    seen = []
    threads.parallel_for(record, 100, seen, grain=60)
    assert seen == [(0, 100)]
    seen = []
    threads.parallel_for(record, 100, seen, grain=30)
    assert len(seen) == 3


def test_errors_reach_the_caller(thread_count):
    thread_count(3)

    def fail(lo, hi):
        if lo > 0:
            raise ValueError("piece %d" % lo)
    with pytest.raises(ValueError, match="piece"):
        threads.parallel_for(fail, 9)


def _child(queue):
    from crfrnn_np.lattice import PermutohedralLattice
    f = np.random.default_rng(0).normal(size=(5000, 3)).astype(np.float32)
    queue.put(float(PermutohedralLattice(f).filter(np.ones((1, 5000), np.float32)).sum()))


def test_forked_child_runs_kernels(thread_count):
    """A child forked after the parent ran threaded kernels starts its own pool (no OpenMP layer to kill it)."""
    thread_count(2)
    queue = multiprocessing.get_context("fork").Queue()
    _child(queue)
    parent = queue.get()
    process = multiprocessing.get_context("fork").Process(target=_child, args=(queue,))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert queue.get(timeout=5) == parent


def test_im2col_col2im_and_pooling_any_thread_count(rng, thread_count):
    from crfrnn_np.layers.im2col import col2im_2d, conv_out_shape, im2col_2d
    x = rng.standard_normal((16, 40, 33)).astype(np.float32)
    results = []
    for count in (1, 3):
        thread_count(count)
        out = []
        for kernel, pad, stride in (((3, 3), (1, 1), (1, 1)), ((4, 3), (2, 1), (2, 1))):
            hw = conv_out_shape(x.shape[1:], kernel, pad, stride, (1, 1))
            col = im2col_2d(x, kernel, pad, stride, (1, 1), hw)
            img = np.zeros_like(x)
            col2im_2d(col, kernel, pad, stride, (1, 1), hw, img)
            out += [col, img]
        for method in ("MAX", "AVE"):
            layer, bottom, top = make_layer('type: "Pooling" pooling_param { pool: %s kernel_size: 3 stride: 2 }'
                                            % method, [x[None]], dtype=np.float32)
            layer.forward(bottom, top)
            top[0].diff = np.ones(top[0].shape)
            layer.backward(top, [True], bottom)
            out += [top[0].data.copy(), bottom[0].diff.copy()]
        results.append(out)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_fused_meanfield_any_thread_count(rng, thread_count):
    """The FUSED engine's forward and backward, on 1 and 3 threads: bit-identical."""
    snippet = ('layer { name: "crf" type: "MultiStageMeanfield" bottom: "u" bottom: "q" bottom: "d" top: "p" '
               'multi_stage_meanfield_param { num_iterations: 3 theta_alpha: 9 theta_beta: 20 theta_gamma: 2 '
               'engine: FUSED } }')
    unary = rng.standard_normal((1, 4, 90, 70)).astype(np.float32)
    image = rng.uniform(-100, 100, (1, 3, 90, 70)).astype(np.float32)
    g = rng.standard_normal(unary.shape)
    results = []
    for count in (1, 3):
        thread_count(count)
        layer, bottom, top = make_layer(snippet, [unary, unary, image], dtype=np.float32, phase="TRAIN")
        layer.blobs[2].data[0, 0] += 0.1 * np.arange(16).reshape(4, 4)      # a full μ: the vertex products run
        layer.forward(bottom, top)
        top[0].diff = g
        layer.backward(top, [True, True, False], bottom)
        results.append([top[0].data.copy(), bottom[0].diff.copy(), bottom[1].diff.copy()]
                       + [b.diff.copy() for b in layer.blobs])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
