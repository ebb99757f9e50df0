"""Per-image Wiener post-filter (wavelet2 v2): a point-symmetric 25-tap diamond filter per
colour plane, fitted by least squares at encode time and stored as 13 quantized weights
(int8, with one scale byte).

The decoder applies it to each decoded YCbCr plane before the colour conversion, with
elementwise float64 operations in a fixed order (no BLAS, no reductions), so the result is
bit-identical on any machine. The encoder keeps a plane's filter only where its error saving
outweighs the 14 bytes it costs (judged with the same rate-distortion weight as the
quantizer).
"""

from __future__ import annotations

import numpy as np

from . import accel

RADIUS = 3
# one tap of each point-symmetric pair of the diamond |i| + |j| <= RADIUS
PAIRS = tuple((i, j) for i in range(0, RADIUS + 1) for j in range(-RADIUS, RADIUS + 1)
              if abs(i) + abs(j) <= RADIUS and (i > 0 or j > 0))
NTAP = 1 + len(PAIRS)      # centre + pairs
_PAIRS_ARR = np.array(PAIRS, dtype=np.int64).ravel()
NBYTES = 1 + NTAP          # per plane: a scale byte, then the weights as int8
# weights are stored as int8 / 2^shift (the centre as 1 + int8 / 2^shift), shift in 2..10
MIN_SHIFT, MAX_SHIFT = 2, 10


def fit(dec: np.ndarray, org: np.ndarray, rows: int = 2,
        block: int = 32) -> tuple[np.ndarray, object]:
    """Least-squares weights (float, centre first) mapping ``dec`` towards ``org``, fitted on
    every ``rows``-th row, and a function giving the squared error of any weights there
    (so the encoder can judge quantized weights without filtering the plane). The normal
    equations are summed over strips of ``block`` rows (one small buffer, cache-resident)."""
    r = RADIUS
    p = np.pad(dec, r, mode="symmetric")
    H, w = dec.shape
    sel = np.arange(0, H, rows)
    a = np.zeros((NTAP, NTAP))
    b = np.zeros(NTAP)
    yy = 0.0
    buf = np.empty((NTAP, min(block, sel.size) * w))
    for k0 in range(0, sel.size, block):
        rr = sel[k0:k0 + block]
        lo, hi, n = int(rr[0]), int(rr[-1]) + 1, rr.size * w
        x = buf[:, :n]
        x[0] = dec[lo:hi:rows].ravel()
        for k, (i, j) in enumerate(PAIRS, 1):
            np.add(p[r + i + lo:r + i + hi:rows, r + j:r + j + w],
                   p[r - i + lo:r - i + hi:rows, r - j:r - j + w], out=x[k].reshape(-1, w))
        y = org[lo:hi:rows].ravel()
        a += x @ x.T
        b += x @ y
        yy += float(y @ y)
    n = a.shape[0]
    try:
        wts = np.linalg.solve(a + 1e-6 * np.trace(a) / n * np.eye(n), b)
    except np.linalg.LinAlgError:
        wts = np.zeros(n)
        wts[0] = 1.0

    def sse(v: np.ndarray) -> float:
        return (yy - 2.0 * float(v @ b) + float(v @ a @ v)) * rows

    return wts, sse


def quantize(w: np.ndarray) -> bytes:
    """The stored form of float weights: a shift byte, then int8 codes (centre relative to
    1), with the finest shift whose codes all fit in int8."""
    d = w.copy()
    d[0] -= 1.0
    shift = MAX_SHIFT
    while shift > MIN_SHIFT and np.abs(np.round(d * 2.0 ** shift)).max() > 127:
        shift -= 1
    codes = np.clip(np.round(d * 2.0 ** shift), -128, 127).astype(np.int8)
    return bytes([shift]) + codes.tobytes()


def weights(stored: bytes) -> np.ndarray:
    """Float weights (centre first) from :func:`quantize`'s bytes; ValueError if malformed."""
    if len(stored) != NBYTES or not MIN_SHIFT <= stored[0] <= MAX_SHIFT:
        raise ValueError("post-filter weights malformed")
    wts = np.frombuffer(stored[1:], dtype=np.int8).astype(np.float64) / 2.0 ** stored[0]
    wts[0] += 1.0
    return wts


def apply(x: np.ndarray, stored: bytes) -> np.ndarray:
    """Filter plane ``x`` with stored weights (deterministic float64, fixed operation order)."""
    wts = weights(stored)
    h, w = x.shape
    r = RADIUS
    p = np.pad(x, r, mode="symmetric")
    if accel.ENABLED:          # the compiled loop: the same operations per sample
        out = np.empty((h, w))
        accel._w2c.pf_apply(p, np.ascontiguousarray(x, dtype=np.float64), (h, w, r), wts,
                            _PAIRS_ARR, out)
        return out
    out = x * wts[0]
    t = np.empty_like(out)
    for k, (i, j) in enumerate(PAIRS, 1):   # out += w_k * (pair sum), in place, fixed order
        np.add(p[r + i:r + i + h, r + j:r + j + w], p[r - i:r - i + h, r - j:r - j + w], out=t)
        t *= wts[k]
        out += t
    return out
