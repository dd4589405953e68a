"""Device kernels of InnerProduct: ``y = x W^T (+ b)`` with x (M, K), W (N, K) (stored (K, N) when
``transpose``), one thread per element of the result of each product (direct, untiled)."""
from numba import cuda

from crfrnn_np.cuda_kernel import I64, gpu_kernel, grid_1d

_SIG = lambda f: [(f[:, ::1], f[:, ::1], I64, f, f[:, ::1])]    # noqa: E731


@gpu_kernel(_SIG)
def ip_forward_kernel(x, w, transpose, zero, y):
    """Thread (m, n): ``y[m, n] = sum_k x[m, k] W[n, k]``."""
    t = cuda.grid(1)
    m_, n_ = y.shape
    if t >= m_ * n_:
        return
    m = t // n_
    n = t - m * n_
    acc = zero
    for k in range(x.shape[1]):
        acc += x[m, k] * (w[k, n] if transpose else w[n, k])
    y[m, n] = acc


@gpu_kernel(_SIG)
def ip_backward_data_kernel(dy, w, transpose, zero, dx):
    """Thread (m, k): ``dx[m, k] = sum_n dy[m, n] W[n, k]``."""
    t = cuda.grid(1)
    m_, k_ = dx.shape
    if t >= m_ * k_:
        return
    m = t // k_
    k = t - m * k_
    acc = zero
    for n in range(dy.shape[1]):
        acc += dy[m, n] * (w[k, n] if transpose else w[n, k])
    dx[m, k] = acc


@gpu_kernel(_SIG)
def ip_backward_weight_kernel(dy, x, transpose, zero, dw):
    """Thread over the stored weight: ``dW[n, k] += sum_m dy[m, n] x[m, k]``."""
    t = cuda.grid(1)
    r_, c_ = dw.shape
    if t >= r_ * c_:
        return
    r = t // c_
    c = t - r * c_
    n, k = (c, r) if transpose else (r, c)
    acc = zero
    for m in range(x.shape[0]):
        acc += dy[m, n] * x[m, k]
    dw[r, c] += acc


def launch(kernel, a, b, transpose, out):
    if out.size:
        kernel[grid_1d(out.size)](a, b, 1 if transpose else 0, out.dtype.type(0), out)
