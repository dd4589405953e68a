"""Device kernels of the layers that move values without arithmetic (Crop, Concat) and of Dropout.

Crop and Concat both copy a 4-D block between two device arrays of which one or both are strided views
(a slice of a C-contiguous array): one thread per element of the block. Crop's N-D blobs are seen as 4-D
(leading singleton axes added, or an axis merged with the uncropped axis after it, :func:`as_4d`), Concat's as ``(1, outer, C_i, inner)``
inside ``(1, outer, C, inner)``.

Dropout's keep mask is normally drawn on the device (dropout_cuda.py). Only when the engine's generator is
not a PCG64 (one set by hand) is it drawn on the host, exactly as the CPU layer draws it, and sent here as a
bit array (one bit per element, least significant bit first): one small transfer (1/32 of a float32 blob).
"""
from numba import cuda, types

from crfrnn_np.cuda_kernel import gpu_kernel, grid_1d

U8 = types.uint8


def _block_signatures(f):
    """Source and destination, each C-contiguous or strided (a slice view): the four combinations."""
    layouts = (f[:, :, :, ::1], f[:, :, :, :])
    return [(src, dst) for src in layouts for dst in layouts]


@gpu_kernel(_block_signatures)
def copy_block_kernel(src, dst):
    """Thread t (flat index into ``dst``'s shape): ``dst[a, b, c, d] = src[a, b, c, d]``."""
    t = cuda.grid(1)
    n0, n1, n2, n3 = dst.shape
    if t >= n0 * n1 * n2 * n3:
        return
    d = t % n3
    r = t // n3
    c = r % n2
    r = r // n2
    b = r % n1
    a = r // n1
    dst[a, b, c, d] = src[a, b, c, d]


@gpu_kernel(lambda f: [(f[::1], U8[::1], f, f, f[::1])])
def dropout_kernel(x, bits, scale, zero, y):
    """Thread i: ``y[i] = x[i] * (scale if bit i of the mask else 0)`` (the CPU layer's product, so the
    same rounding; ``y`` may be ``x``)."""
    i = cuda.grid(1)
    if i < y.shape[0]:
        keep = (bits[i >> 3] >> (i & 7)) & 1
        y[i] = x[i] * (scale if keep else zero)


def copy_block(src, dst):
    """``dst[...] = src`` for 4-D device arrays (views) of one shape."""
    if dst.size:
        copy_block_kernel[grid_1d(dst.size)](src, dst)


def as_4d(shape, offsets, top_shape):
    """A 4-D form of an N-D crop: ``(bottom shape, offsets, top shape)`` with 4 axes each, or None when the
    crop cannot be seen as 4-D.

    Fewer axes get leading singletons. More axes are merged in pairs: axes a and a+1 (the leftmost such pair
    first) whenever axis a+1 is not cropped, since then the kept part of the pair is one contiguous run of
    the merged axis, from ``offset_a * size_{a+1}``, of ``top_a * size_{a+1}`` elements (axis a may be
    cropped). None (the layer then runs on the host) only when more than 4 axes remain with no uncropped axis
    after the first, e.g. a 5-D crop of channels and of all three spatial axes."""
    shape, offsets, top_shape = list(shape), list(offsets), list(top_shape)
    while len(shape) < 4:
        shape.insert(0, 1)
        offsets.insert(0, 0)
        top_shape.insert(0, 1)
    while len(shape) > 4:
        pair = next((a for a in range(len(shape) - 1) if not offsets[a + 1] and shape[a + 1] == top_shape[a + 1]),
                    None)
        if pair is None:
            return None
        a = pair
        inner = shape[a + 1]
        shape[a:a + 2] = [shape[a] * inner]
        top_shape[a:a + 2] = [top_shape[a] * inner]
        offsets[a:a + 2] = [offsets[a] * inner]
    return tuple(shape), tuple(offsets), tuple(top_shape)


def crop_view(array, shape4, offsets4, top4):
    """The strided 4-D view of ``array`` (bottom-shaped, C-contiguous) that the crop keeps."""
    return array.reshape(shape4)[tuple(slice(o, o + d) for o, d in zip(offsets4, top4))]


def dropout(x, bits, scale, y):
    """``y = x * mask * scale`` on the device (flat arrays; ``bits`` the packed mask)."""
    if y.size:
        t = y.dtype.type
        dropout_kernel[grid_1d(y.size)](x, bits, t(scale), t(0), y)


__all__ = ["copy_block", "as_4d", "crop_view", "dropout"]
