r"""Compatibility: a learnable C x C matrix applied to the class vector of every pixel.

Bottom: (N, C, H, W). Top: (N, C', H, W). Parameter ``blobs[0]`` = W of shape (1, 1, C', C), entry
[i, j] mapping input class j to output class i (the reference's layout, spec crfasrnn.md §1.4). CRF-as-RNN
uses it three times per mean-field iteration: the spatial and bilateral kernel weights W_s, W_b and the
compatibility transform μ (§2.1 steps 5 and 6).

Forward, per image n with X_n the C x (H·W) matrix of its planes:   Y_n = W · X_n.

Backward:  ∂X_n = Wᵀ · ∂Y_n (overwritten);   ∂W += Σ_n ∂Y_n · X_nᵀ (accumulated, Caffe's rule).

Initialisation (``compatibility_param``): ``diagonal_str`` = C space-separated numbers (or one number for
all) gives W = diag(values) (3·I and 5·I for the kernel weights, −I for Potts μ); otherwise ``weight_filler``
(default: constant 0).
"""
import numpy as np

from crfrnn_np.config import WEIGHT_DIFF_BLOCK
from crfrnn_np.errors import NetError
from crfrnn_np.fillers import fill
from crfrnn_np.layer import Layer, register_layer


def parse_diagonal(text, size, where=""):
    """``"3 3 3"`` -> float array of ``size`` values (one token is repeated ``size`` times).

    Raises
    ------
    NetError
        If a token is not a number or the count is neither 1 nor ``size``.
    """
    try:
        values = [float(tok) for tok in text.split()]
    except ValueError:
        raise NetError("%sdiagonal %r is not a list of numbers" % (where, text)) from None
    if len(values) == 1:
        values = values * size
    if len(values) < size:
        raise NetError("%sdiagonal %r has %d numbers, need %d (one per class)"
                       % (where, text, len(values), size))
    return np.asarray(values[:size], dtype=np.float64)




def apply_compatibility(weight, bottom, top):
    """``top[n] = weight · bottom[n]`` per image, as C' x C by C x (H·W) matrix products written into ``top``.

    Parameters
    ----------
    weight : ndarray, (C', C)
    bottom : ndarray, (N, C, H, W)
        C-contiguous per image (``bottom[n]`` one C x (H·W) matrix); a stacked bottom such as
        ``[S; B]`` (N, 2C, H, W) with ``weight = [W_s W_b]`` gives ``W_s S + W_b B`` in one product.
    top : ndarray, (N, C', H, W)
        C-contiguous per image; written in place, one BLAS GEMM per image (numpy copies ``bottom`` first
        if the two overlap).
    """
    n, c = bottom.shape[:2]
    pixels = int(np.prod(bottom.shape[2:], dtype=np.int64))
    weight = np.ascontiguousarray(weight, dtype=top.dtype)
    for i in range(n):
        if not top[i].flags.c_contiguous:
            raise ValueError("apply_compatibility: top image %d is not C-contiguous" % i)
        np.matmul(weight, bottom[i].reshape(c, pixels), out=top[i].reshape(weight.shape[0], pixels))


def accumulate_weight_diff(top_diff, bottom, weight_diff):
    """``weight_diff += Σ_n top_diff[n] · bottom[n]ᵀ``: the weight gradient of :func:`apply_compatibility`.

    Parameters
    ----------
    top_diff : ndarray, (N, C', H, W)
    bottom : ndarray, (N, C, H, W)
        The forward's bottom (a stacked ``[S; B]`` gives the gradients of ``[W_s W_b]`` side by side).
    weight_diff : ndarray, (C', C)
        Accumulated in place (Caffe's rule for parameter diffs).
    """
    n, c = bottom.shape[:2]
    pixels = int(np.prod(bottom.shape[2:], dtype=np.int64))
    part = np.empty(weight_diff.shape, weight_diff.dtype)
    for i in range(n):
        dy = top_diff[i].reshape(-1, pixels)
        x = bottom[i].reshape(c, pixels)
        # blocks of pixels: a C' x C product over a very long inner dimension runs far slower in one
        # multithreaded GEMM call than as a sum of small (cache-resident, single-threaded) ones
        for p0 in range(0, pixels, WEIGHT_DIFF_BLOCK):
            np.matmul(dy[:, p0:p0 + WEIGHT_DIFF_BLOCK], x[:, p0:p0 + WEIGHT_DIFF_BLOCK].T, out=part)
            weight_diff += part


@register_layer("Compatibility")
class CompatibilityLayer(Layer):
    """Per-pixel C' x C matrix product with a learnable matrix; see the module docstring."""

    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.shape_error("bottom '%s' must be N x C x H x W, got %s"
                                   % (bottom[0].name, bottom[0].shape_string()))
        p = self.layer_param.compatibility_param
        c_in = bottom[0].shape[1]
        c_out = int(p.num_output) if p.has("num_output") else c_in
        if self.blobs:
            return
        weight = self.make_blob((1, 1, c_out, c_in))
        if p.diagonal_str:
            if c_out != c_in:
                raise self.error("diagonal_str needs a square matrix (num_output %d, %d input channels)"
                                 % (c_out, c_in), field="compatibility_param")
            weight.data[0, 0] = np.diag(parse_diagonal(p.diagonal_str, c_in, self.where("compatibility_param")))
        else:
            fill(weight.data, p.weight_filler, where=self.where("compatibility_param"))
        self.blobs = [weight]
        self.param_propagate_down = [True]

    def reshape(self, bottom, top):
        n, c, h, w = bottom[0].shape if bottom[0].num_axes == 4 else (None,) * 4
        if n is None or c != self.blobs[0].shape[3]:
            raise self.shape_error("bottom '%s' %s: expected N x %d x H x W for a %s weight matrix"
                                   % (bottom[0].name, bottom[0].shape_string(), self.blobs[0].shape[3],
                                      self.blobs[0].shape_string()))
        top[0].reshape((n, self.blobs[0].shape[2], h, w))

    def forward_cpu(self, bottom, top):
        apply_compatibility(self.blobs[0].data[0, 0], bottom[0].data, top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if self.param_propagate_down[0]:
            # ∂W = Σ_n ∂Y_n X_nᵀ, summed over the batch, accumulated into the parameter diff
            accumulate_weight_diff(top[0].diff, bottom[0].data, self.blobs[0].diff[0, 0])
        if propagate_down[0]:
            apply_compatibility(self.blobs[0].data[0, 0].T, top[0].diff, bottom[0].diff)


    def forward_gpu(self, bottom, top):
        from .crf_cuda import compatibility
        w = self.blobs[0].gpu_data()
        compatibility(w.reshape(w.shape[2], w.shape[3]), bottom[0].gpu_data(), top[0].mutable_gpu_data(), False)

    def backward_gpu(self, top, propagate_down, bottom):
        from .crf_cuda import compatibility, compatibility_weight_diff
        w = self.blobs[0].gpu_data()
        w = w.reshape(w.shape[2], w.shape[3])
        if self.param_propagate_down[0]:
            dw = self.blobs[0].mutable_gpu_diff()
            compatibility_weight_diff(top[0].gpu_diff(), bottom[0].gpu_data(), dw.reshape(w.shape))
        if propagate_down[0]:
            compatibility(w, top[0].gpu_diff(), bottom[0].mutable_gpu_diff(), True)
