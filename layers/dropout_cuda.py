"""Dropout's keep mask drawn on the device, bit for bit the mask the CPU layer draws.

The engine's generator is NumPy's ``PCG64``: a 128-bit LCG ``s <- a s + c (mod 2^128)`` whose ``k``-th draw is
``xsl_rr(s_k)`` (``(hi ^ lo)`` rotated right by ``hi >> 58``), and ``Generator.random`` turns a draw ``u`` into
``(u >> 11) * 2^-53``. An LCG can jump: ``s_k = A_k s_0 + C_k`` with ``(A_k, C_k)`` found by squaring in
``log2 k`` steps (Brown's jump-ahead). So thread ``i`` computes draw ``i + 1`` from the generator's state,
compares it with ``1 - ratio`` as the CPU layer does, and the host then advances its generator by the number
of elements, exactly as the CPU layer's ``random(shape)`` would: the same mask, the same stream afterwards, and
nothing crosses (the state travels as four 64-bit kernel arguments). The backward draws the same mask again
from the saved state instead of storing it.

128-bit values are ``(hi, lo)`` pairs of uint64; products keep the low 128 bits. The helpers are ``numba.njit``
functions, which numba.cuda compiles into the kernel (and the simulator runs compiled).
"""
import numba
from numba import cuda, types

from crfrnn_np.cuda_kernel import F64, gpu_kernel, grid_1d

U64 = types.uint64
#: PCG64's 128-bit multiplier (PCG's default for 128-bit state), as its high and low 64-bit halves.
_MULT_HI, _MULT_LO = 0x2360ED051FC65DA4, 0x4385DF649FCCF645
#: 2^-53: a 53-bit integer times this is a double in [0, 1).
_TWO_M53 = 1.0 / 9007199254740992.0


@numba.njit
def _mulhi(x, y):
    """High 64 bits of the 128-bit product of two uint64 (32-bit halves: no partial product overflows)."""
    m = U64(0xFFFFFFFF)
    s = U64(32)
    x0, x1, y0, y1 = x & m, x >> s, y & m, y >> s
    p00, p01, p10, p11 = x0 * y0, x0 * y1, x1 * y0, x1 * y1
    mid = (p00 >> s) + (p01 & m) + (p10 & m)
    return p11 + (p01 >> s) + (p10 >> s) + (mid >> s)


@numba.njit
def _mul128(ahi, alo, bhi, blo):
    """``a b mod 2^128``."""
    return _mulhi(alo, blo) + alo * bhi + ahi * blo, alo * blo


@numba.njit
def _add128(ahi, alo, bhi, blo):
    """``a + b mod 2^128``."""
    lo = alo + blo
    return ahi + bhi + (U64(1) if lo < alo else U64(0)), lo


@numba.njit
def pcg64_uniform(state_hi, state_lo, inc_hi, inc_lo, k):
    """The ``k``-th double (k >= 1) that ``Generator.random`` draws from a PCG64 in state ``(state, inc)``."""
    one, zero = U64(1), U64(0)
    acc_mhi, acc_mlo, acc_phi, acc_plo = zero, one, zero, zero       # (A, C) = identity
    cur_mhi, cur_mlo, cur_phi, cur_plo = U64(_MULT_HI), U64(_MULT_LO), inc_hi, inc_lo
    steps = U64(k)
    while steps > zero:
        if steps & one:
            acc_mhi, acc_mlo = _mul128(acc_mhi, acc_mlo, cur_mhi, cur_mlo)
            t_hi, t_lo = _mul128(acc_phi, acc_plo, cur_mhi, cur_mlo)
            acc_phi, acc_plo = _add128(t_hi, t_lo, cur_phi, cur_plo)
        a_hi, a_lo = _add128(cur_mhi, cur_mlo, zero, one)             # c <- (a + 1) c, a <- a^2
        cur_phi, cur_plo = _mul128(a_hi, a_lo, cur_phi, cur_plo)
        cur_mhi, cur_mlo = _mul128(cur_mhi, cur_mlo, cur_mhi, cur_mlo)
        steps = steps >> one
    t_hi, t_lo = _mul128(acc_mhi, acc_mlo, state_hi, state_lo)
    hi, lo = _add128(t_hi, t_lo, acc_phi, acc_plo)
    x = hi ^ lo                                                       # xsl_rr output
    r = hi >> U64(58)
    out = (x >> r) | (x << ((U64(64) - r) & U64(63)))
    return float(out >> U64(11)) * _TWO_M53


@gpu_kernel(lambda f: [(f[::1], U64, U64, U64, U64, F64, f, f, f[::1])])
def dropout_draw_kernel(x, state_hi, state_lo, inc_hi, inc_lo, keep, scale, zero, y):
    """Thread i: ``y[i] = x[i] * (scale if draw i + 1 < keep else 0)`` (``y`` may be ``x``)."""
    i = cuda.grid(1)
    if i < y.shape[0]:
        kept = pcg64_uniform(state_hi, state_lo, inc_hi, inc_lo, i + 1) < keep
        y[i] = x[i] * (scale if kept else zero)


def generator_state(rng):
    """``(state_hi, state_lo, inc_hi, inc_lo)`` of a PCG64 ``numpy.random.Generator``, or None for another bit
    generator."""
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        return None
    mask = (1 << 64) - 1
    s, c = int(st["state"]["state"]), int(st["state"]["inc"])
    return s >> 64, s & mask, c >> 64, c & mask


def advance(rng, n):
    """Move a PCG64 generator ``n`` draws on, as ``n`` calls of ``random()`` would: only the LCG state changes
    (``bit_generator.advance`` would also clear the buffered 32-bit half, which ``random()`` keeps)."""
    st = rng.bit_generator.state
    s, c = int(st["state"]["state"]), int(st["state"]["inc"])
    mult, mask = (_MULT_HI << 64) | _MULT_LO, (1 << 128) - 1
    acc_mult, acc_plus = 1, 0
    while n > 0:                                        # the jump-ahead of pcg64_uniform, in Python integers
        if n & 1:
            acc_mult, acc_plus = acc_mult * mult & mask, (acc_plus * mult + c) & mask
        c = (mult + 1) * c & mask
        mult = mult * mult & mask
        n >>= 1
    st["state"]["state"] = (acc_mult * s + acc_plus) & mask
    rng.bit_generator.state = st


def dropout(x, state, keep, scale, y):
    """``y = x * mask * scale`` with the mask of the draws after ``state`` (flat device arrays)."""
    if y.size:
        t = y.dtype.type
        dropout_draw_kernel[grid_1d(y.size)](x, *(numba.uint64(v) for v in state), float(keep), t(scale), t(0), y)


__all__ = ["dropout", "generator_state", "advance", "pcg64_uniform"]
