"""Per-image least-squares refits whose quantized coefficients travel in the file (seed 001's
decoder fine-tuning, CNN-AE-FT, made cheap): shared by ``ae --finetune`` and
``hyperprior --adapt``.

The pieces are generic: normal equations ``(G, B)`` of a linear correction, a search over
ridge and quantizer step that minimizes predicted rate + lambda * distortion, an entropy-coded
coefficient stream, and an adaptive loop filter: a (2r+1)^2 x 3-colour linear filter plus bias
applied to the decoded 8-bit image (the classic video-coding ALF, fitted per image by least
squares). The filter is applied with element-wise numpy arithmetic in a fixed order, so a
decoder on any CPU reproduces the encoder's pixels exactly.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..entropy import decode_indexed, encode_indexed
from ..errors import FormatError

STEPS = tuple(range(6, 14))           # quantizer step 2^-e candidates
RIDGES = (0.0, 1e-4, 1e-3)
RADII = (1, 2)                        # loop-filter radii the encoder tries
STRIP = 32                            # rows per strip when accumulating the normal equations


def code_cost(freqs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(S, 2V+1) bits to code value v (column v + V) with table row s, escapes approximated."""
    S, K = freqs.shape
    V = K
    tot = freqs.sum(1, keepdims=True).astype(np.float64)
    bits = -np.log2(np.maximum(freqs, 1) / tot)
    out = np.empty((S, 2 * V + 1))
    v = np.arange(-V, V + 1)
    for s in range(S):
        col = v - offsets[s]
        inside = (col >= 0) & (col < K - 1)
        esc = bits[s, K - 1] + 8 * (1 + np.floor(np.log2(2 * np.abs(v) + 1) / 7))
        out[s] = np.where(inside, bits[s, np.clip(col, 0, K - 2)], esc)
    return out


class CoefCoder:
    """Integer coefficient vectors <-> bytes: a header (``head`` bytes the caller gives, the
    step exponent, one table row) then the values coded with a Gaussian table row."""

    def __init__(self, freqs: np.ndarray, offsets: np.ndarray) -> None:
        self.freqs, self.offsets = freqs.astype(np.int64), offsets.astype(np.int64)
        self.cost = code_cost(self.freqs, self.offsets)

    def encode(self, q: np.ndarray, e: int, head: bytes = b"") -> bytes:
        V = (self.cost.shape[1] - 1) // 2
        vi = np.clip(q.ravel() + V, 0, 2 * V)
        row = int(np.argmin(self.cost[:, vi].sum(1)))
        return head + bytes([e, row]) + encode_indexed(q.ravel(), np.full(q.size, row),
                                                       self.freqs, self.offsets)

    def decode(self, data: bytes, n: int) -> np.ndarray:
        """n dequantized coefficients from ``data`` (after any caller header)."""
        if len(data) < 2 or not 0 < data[0] < 40 or data[1] >= self.freqs.shape[0]:
            raise FormatError("refit coefficient stream malformed")
        q = decode_indexed(data[2:], np.full(n, data[1]), self.freqs, self.offsets)
        return q.astype(np.float64) * 2.0 ** -data[0]


def best_quantized(G: np.ndarray, B: np.ndarray, stream_of: Callable[[np.ndarray, int], bytes],
                   j_of: Callable[[float, int], float]):
    """The quantized solution of min |A^T d - T|^2 (last feature: the constant 1) that
    minimizes ``j_of(dsse, nbytes)`` over
    ridge strengths and steps. ``G = A A^T``, ``B = A T^T`` (features x outputs); ``dsse`` is
    the exact change of the squared error. Returns (J, stream, d) or None."""
    P = max(float(G[-1, -1]), 1e-12)          # the bias row: the sample count
    best = None
    for mu in RIDGES:
        try:
            D = np.linalg.solve(G + mu * P * np.eye(G.shape[0]), B)
        except np.linalg.LinAlgError:
            continue
        for e in STEPS:
            q = np.rint(D * 2.0 ** e).astype(np.int64)
            if not q.any():
                continue
            d = q * 2.0 ** -e
            dsse = float(-2 * (d * B).sum() + np.einsum("io,ij,jo->", d, G, d))
            stream = stream_of(q, e)
            j = j_of(dsse, len(stream))
            if best is None or j < best[0]:
                best = (j, stream, d)
    return best


# ---------------------------------------------------------------------------------------------
# adaptive loop filter on the decoded 8-bit image

def _offsets(r: int) -> list[tuple[int, int, int]]:
    return [(c, dy, dx) for c in range(3) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


def filter_size(r: int) -> int:
    """Coefficients per output colour: 3 (2r+1)^2 taps + bias."""
    return 3 * (2 * r + 1) ** 2 + 1


def filter_equations(z: np.ndarray, target: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations of the radius-r loop filter predicting ``target - z`` from the
    neighbourhood of ``z - 0.5`` (both (3, H, W) in [0, 1]); edge-replicated borders.

    The products run in torch (one thread in the codecs): numpy's OpenBLAS starts a thread
    per core and, on a loaded machine, spun 80x the CPU time of one thread here."""
    import torch

    _, H, W = z.shape
    zp = np.pad(z - 0.5, ((0, 0), (r, r), (r, r)), mode="edge")
    offs = _offsets(r)
    n = len(offs) + 1
    G = np.zeros((n, n))
    B = np.zeros((n, 3))
    for a in range(0, H, STRIP):
        b = min(H, a + STRIP)
        A = np.empty((n, (b - a) * W))
        for i, (c, dy, dx) in enumerate(offs):
            A[i] = zp[c, a + r + dy:b + r + dy, r + dx:r + dx + W].ravel()
        A[-1] = 1.0
        T = torch.from_numpy((target[:, a:b] - z[:, a:b]).reshape(3, -1))
        At = torch.from_numpy(A)
        G += (At @ At.T).numpy()
        B += (At @ T.T).numpy()
    return G, B


def apply_filter(z: np.ndarray, d: np.ndarray, r: int) -> np.ndarray:
    """``z`` (3, H, W) plus the loop filter ``d`` ((3 (2r+1)^2 + 1, 3): taps then bias), in a
    fixed element-wise order (bit-exact everywhere)."""
    _, H, W = z.shape
    zp = np.pad(z - 0.5, ((0, 0), (r, r), (r, r)), mode="edge")
    out = z.copy()
    for o in range(3):
        acc = np.full((H, W), d[-1, o])
        for i, (c, dy, dx) in enumerate(_offsets(r)):
            if d[i, o] != 0.0:
                acc += d[i, o] * zp[c, r + dy:r + dy + H, r + dx:r + dx + W]
        out[o] += acc
    return out


def fit_filter(coder: CoefCoder, z: np.ndarray, target: np.ndarray, j_of) -> tuple | None:
    """Best loop filter over :data:`RADII` by predicted J: (J, stream, d, r) or None.
    ``j_of(dsse, nbytes)`` turns a change of squared error and a stream size into J."""
    best = None
    G2, B2 = filter_equations(z, target, max(RADII))
    full = _offsets(max(RADII))
    for r in RADII:
        keep = [i for i, (c, dy, dx) in enumerate(full) if max(abs(dy), abs(dx)) <= r]
        keep.append(len(full))
        G, B = G2[np.ix_(keep, keep)], B2[keep]
        res = best_quantized(G, B, lambda q, e, r=r: coder.encode(q, e, bytes([r])), j_of)
        if res is not None and (best is None or res[0] < best[0]):
            best = (*res, r)
    return best


def decode_filter(coder: CoefCoder, data: bytes) -> tuple[np.ndarray, int]:
    """(d, r) from a loop-filter stream."""
    if len(data) < 1 or data[0] not in RADII:
        raise FormatError("loop-filter stream malformed")
    r = data[0]
    n = filter_size(r)
    return coder.decode(data[1:], 3 * n).reshape(n, 3), r


def loop_filter(coder: CoefCoder, z: np.ndarray, target: np.ndarray, j_of) -> tuple | None:
    """Fit the loop filter of decoded ``z`` to ``target`` ((3, H, W) in [0, 1], z on the 8-bit
    grid) and keep it only when J = ``j_of(change of squared error, stream bytes)`` measured
    on the filtered 8-bit image is below ``j_of(0, 0)``. Returns (stream, filtered image before
    rounding, J, r) or None."""
    lf = fit_filter(coder, z, target, j_of)
    j0 = j_of(0.0, 0)
    if lf is None or lf[0] >= j0:
        return None
    out = apply_filter(z, lf[2], lf[3])
    sse0 = float(((z - target) ** 2).sum())
    sse1 = float(((np.clip(np.rint(out * 255.0), 0, 255) / 255.0 - target) ** 2).sum())
    j1 = j_of(sse1 - sse0, len(lf[1]))
    return (lf[1], out, j1, lf[3]) if j1 < j0 else None
