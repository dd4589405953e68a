"""The numba CPU lattice against the NumPy reference: the build, vertex for vertex, whatever the number of
threads, the growth of the hash table and the width of the packed keys; the grouped filter; and the two
modules side by side, stage by stage, through one stage API: ``build(features)`` gives the lattice record;
``splat(values, lattice)``, ``blur(buf, lattice, reverse)``, ``slice_(buf, lattice)`` and
``filter_(values, lattice, reverse)`` take it. Bit for bit in float32 and float64."""
import numpy as np
import pytest

from crfrnn_np.lattice import PermutohedralLattice, bilateral_features, cpu, reference, spatial_features


def smooth_image(rng, h, w, amplitude=60.0):
    """A (3, H, W) float32 image of smooth blobs plus a little noise (colour features that cluster)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((3, h, w))
    for _ in range(4):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.3 * max(h, w)) ** 2))
        img += rng.normal(size=(3, 1, 1)) * amplitude * blob
    return (img + rng.normal(size=img.shape) * 2).astype(np.float32)


def assert_same_lattice(features, lattice):
    """Vertex ids in the reference's insertion order, same weights and same neighbour table."""
    ref = reference.build(features)
    for key in ("vertex", "weights", "neighbours", "num_vertices"):
        np.testing.assert_array_equal(lattice[key], ref[key])


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_build_matches_reference_any_thread_count(rng, thread_count, monkeypatch, count):
    """Embedding, numbering (in chunks) and neighbours run on ``count`` threads: the same lattice as the
    reference's, vertex for vertex."""
    monkeypatch.setattr(cpu, "CPU_NUMBER_MIN_CHUNK", 4096)        # chunked numbering at a test's size
    thread_count(count)
    f = (rng.normal(size=(12300, 5)) * np.float32([4, 4, 2, 2, 2])).astype(np.float32)   # up to 3 chunks
    assert cpu._chunks(len(f)).shape[0] - 1 == min(count, 3)
    assert_same_lattice(f, cpu.build(f))


def test_hash_table_grows(rng):
    """Scattered points have about d+1 vertices each, more than the first table holds (2N slots at half
    load): the table grows while numbering, and the ids keep the insertion order."""
    f = (rng.normal(size=(3000, 2)) * 200).astype(np.float32)
    lattice = cpu.build(f)
    assert lattice["num_vertices"] > 3000
    assert_same_lattice(f, lattice)


def test_multi_word_keys(rng):
    """d = 12 with wide coordinate ranges does not fit one 63-bit word: keys span several words."""
    d = 12
    f = (rng.normal(size=(400, d)) * 40).astype(np.float32)
    lattice = cpu.build(f)
    assert lattice["key_words"] >= 2
    assert_same_lattice(f, lattice)
    x = rng.normal(size=(3, 400))
    for reverse in (False, True):
        np.testing.assert_array_equal(PermutohedralLattice(f, "cpu").filter(x, reverse),
                                      PermutohedralLattice(f, "reference").filter(x, reverse))


def test_build_from_simplices_gather_index(rng):
    """The CUDA path's host build: same lattice, and a gather index listing each vertex's pixels in
    pixel order with their weights."""
    f = (rng.normal(size=(200, 3)) * 2).astype(np.float32)
    lat = cpu.build(f)
    _, weights = reference.enclosing_simplex(reference.embed(f))
    rem0 = np.empty(lat["vertex"].shape, np.int32)
    rank = np.empty(lat["vertex"].shape, np.int32)
    elevated = reference.embed(f)
    bary = np.empty(f.shape[1] + 2, np.float32)
    for i in range(f.shape[0]):
        cpu.enclosing_simplex(elevated[i], 3, np.float32(0.25), rem0[i], rank[i], bary)
    host = cpu.build_from_simplices(rem0, rank, weights)
    assert_same_lattice(f, host)
    offsets, pixel, weight = host["splat_offsets"], host["splat_pixel"], host["splat_weight"]
    for v in range(host["num_vertices"]):
        pix, r = np.nonzero(lat["vertex"] == v)
        np.testing.assert_array_equal(pixel[offsets[v]:offsets[v + 1]], pix)
        np.testing.assert_array_equal(weight[offsets[v]:offsets[v + 1]], lat["weights"][pix, r])


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_channel_groups_and_stages(rng, channels):
    """Odd channel counts (uneven groups) and the stage functions composed agree with the reference."""
    f = (rng.normal(size=(500, 5)) * 1.5).astype(np.float32)
    lat = PermutohedralLattice(f, "cpu")
    ref = PermutohedralLattice(f, "reference")
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=(channels, 500)).astype(dtype)
        want = ref.filter(x)
        np.testing.assert_array_equal(lat.filter(x), want)
        arrays = lat._impl.arrays
        np.testing.assert_array_equal(cpu.slice_(cpu.blur(cpu.splat(x, arrays), arrays), arrays), want)


@pytest.mark.parametrize("tasks", [1, 2, 5])
def test_splat_plan_any_task_count_and_layout(rng, tasks):
    """The splat split over ``tasks`` owners (each walking its own entry list) equals the reference splat
    bit for bit, from (C, N) planes or (N, C) rows, with and without a per-pixel scale."""
    f = (rng.normal(size=(700, 5)) * 1.2).astype(np.float32)
    lat = PermutohedralLattice(f, "cpu")
    arrays = lat.arrays
    ref = reference.build(f)
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=(3, 700)).astype(dtype)
        scale = rng.uniform(0.5, 2.0, 700).astype(dtype)
        for s in (None, scale):
            want = reference.splat(x if s is None else x * s, ref)
            planes = cpu.splat(x, arrays, s, tasks=tasks)
            rows = cpu.splat(np.ascontiguousarray(x.T), arrays, s, pixel_major=True, tasks=tasks)
            np.testing.assert_array_equal(planes, want)
            np.testing.assert_array_equal(rows, want)
    bounds, offsets, packed, shift = cpu.splat_plan(arrays, tasks)
    assert bounds.shape == (tasks + 1,) and offsets[-1] == packed.shape[0] == ref["vertex"].size


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_reference_equals_cpu_bitwise(rng, d):
    f = (rng.normal(size=(300, d)) * 1.5).astype(np.float32)
    ref = PermutohedralLattice(f, backend="reference")
    fast = PermutohedralLattice(f, backend="cpu")
    assert ref.num_vertices == fast.num_vertices
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=(4, 300)).astype(dtype)
        for reverse in (False, True):
            np.testing.assert_array_equal(ref.filter(x, reverse), fast.filter(x, reverse))


def test_cpu_image_lattices_match_reference(rng):
    img = smooth_image(rng, 20, 24)
    for feats in (spatial_features(20, 24, 3.0), bilateral_features(img, 8.0, 6.0)):
        x = rng.random((5, 480), dtype=np.float32)
        np.testing.assert_array_equal(PermutohedralLattice(feats, "reference").filter(x, True),
                                      PermutohedralLattice(feats, "cpu").filter(x, True))


STAGES = ("build", "splat", "blur", "slice_", "filter_")


def test_both_modules_have_the_stages():
    for stage in STAGES:
        assert callable(getattr(reference, stage)) and callable(getattr(cpu, stage))


@pytest.mark.parametrize("d", [2, 5, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stage_by_stage(rng, d, dtype):
    features = (rng.normal(size=(600, d)) * 1.7).astype(np.float32)
    values = rng.normal(size=(3, 600)).astype(dtype)
    ref, fast = reference.build(features), cpu.build(features)
    for key in ("vertex", "weights", "neighbours", "num_vertices"):
        np.testing.assert_array_equal(fast[key], ref[key], err_msg="build: " + key)
    buf_ref, buf_fast = reference.splat(values, ref), cpu.splat(values, fast)
    np.testing.assert_array_equal(buf_fast, buf_ref, err_msg="splat")
    for reverse in (False, True):
        blurred_ref = reference.blur(buf_ref, ref, reverse)
        blurred_fast = cpu.blur(buf_fast.copy(), fast, reverse)
        np.testing.assert_array_equal(blurred_fast, blurred_ref, err_msg="blur, reverse=%s" % reverse)
        np.testing.assert_array_equal(cpu.slice_(blurred_fast, fast), reference.slice_(blurred_ref, ref),
                                      err_msg="slice_")
        np.testing.assert_array_equal(cpu.filter_(values, fast, reverse), reference.filter_(values, ref, reverse),
                                      err_msg="filter_, reverse=%s" % reverse)
