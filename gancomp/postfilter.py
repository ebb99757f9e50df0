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

RADIUS = 3
# one tap of each point-symmetric pair of the diamond |i| + |j| <= RADIUS
PAIRS = tuple((i, j) for i in range(0, RADIUS + 1) for j in range(-RADIUS, RADIUS + 1)
              if abs(i) + abs(j) <= RADIUS and (i > 0 or j > 0))
NTAP = 1 + len(PAIRS)      # centre + pairs
NBYTES = 1 + NTAP          # per plane: a scale byte, then the weights as int8
# weights are stored as int8 / 2^shift (the centre as 1 + int8 / 2^shift), shift in 2..10
MIN_SHIFT, MAX_SHIFT = 2, 10


def _terms(x: np.ndarray, rows: int = 1):
    """The filter's inputs: the plane itself, then each symmetric pair's sum (fixed order);
    on every ``rows``-th row only when ``rows`` > 1 (the encoder's fit)."""
    h, w = x.shape
    r = RADIUS
    p = np.pad(x, r, mode="symmetric")
    yield x[::rows]
    for i, j in PAIRS:
        yield p[r + i:r + i + h:rows, r + j:r + j + w] + p[r - i:r - i + h:rows, r - j:r - j + w]


def fit(dec: np.ndarray, org: np.ndarray, rows: int = 2) -> tuple[np.ndarray, object]:
    """Least-squares weights (float, centre first) mapping ``dec`` towards ``org``, fitted on
    every ``rows``-th row, and a function giving the squared error of any weights there
    (so the encoder can judge quantized weights without filtering the plane)."""
    x = np.stack([t.ravel() for t in _terms(dec, rows)], axis=1)
    y = org[::rows].ravel()
    a = x.T @ x
    b = x.T @ y
    yy = float(y @ y)
    n = a.shape[0]
    try:
        w = np.linalg.solve(a + 1e-6 * np.trace(a) / n * np.eye(n), b)
    except np.linalg.LinAlgError:
        w = np.zeros(n)
        w[0] = 1.0

    def sse(v: np.ndarray) -> float:
        return (yy - 2.0 * float(v @ b) + float(v @ a @ v)) * rows

    return w, sse


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
    out = None
    for k, t in enumerate(_terms(x)):
        term = t * wts[k]
        out = term if out is None else out + term
    return out
