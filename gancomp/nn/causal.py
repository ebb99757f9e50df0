"""Causal pixel contexts for predictive lossless coding, and the wavefront decode schedule.

A pixel (y, x) is predicted from already-coded pixels: two rows above (x-2..x+2 in row y-2,
x-2..x+1 in row y-1) and two to the left in its own row, in every colour channel. Pixels
outside the image read as 0. With this context every pixel on the diagonal t = x + 2y depends
only on diagonals < t, so the decoder predicts a whole diagonal per network call.

Everything here is integer numpy: the encoder (all pixels at once), the decoder (one diagonal
at a time) and the training sampler call the same :func:`gather` on a padded canvas, so their
network inputs are identical by construction.
"""

from __future__ import annotations

import numpy as np

# (dy, dx) of the causal neighbours; (0,-1) = a (left), (-1,0) = b (above), (-1,-1) = c.
OFFSETS: tuple[tuple[int, int], ...] = (
    (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2),
    (-1, -2), (-1, -1), (-1, 0), (-1, 1),
    (0, -2), (0, -1),
)
PAD_TOP, PAD_LEFT, PAD_RIGHT = 2, 2, 2
_A, _B, _C = OFFSETS.index((0, -1)), OFFSETS.index((-1, 0)), OFFSETS.index((-1, -1))
N_POS = len(OFFSETS)


def n_inputs(channels: int) -> int:
    """Width of the trunk input: neighbours minus the channel's MED prediction, plus the MED."""
    return channels * (N_POS + 1)


def pad(image: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> zero-padded int32 canvas the contexts read from."""
    h, w, c = image.shape
    out = np.zeros((h + PAD_TOP, w + PAD_LEFT + PAD_RIGHT, c), dtype=np.int32)
    out[PAD_TOP:, PAD_LEFT:PAD_LEFT + w] = image
    return out


def med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """LOCO-I / JPEG-LS median edge detector prediction."""
    mx, mn = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))


def gather(canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs for pixels (ys, xs) of the image padded by :func:`pad`.

    Returns ``(inputs, meds)``: inputs (N, C*(N_POS+1)) int32 laid out channel by channel as
    [neighbour - MED for each offset] + [MED - 128]; meds (N, C) int32 MED predictions.
    """
    py = ys + PAD_TOP
    px = xs + PAD_LEFT
    c = canvas.shape[2]
    nb = np.stack([canvas[py + dy, px + dx] for dy, dx in OFFSETS], axis=1)  # (N, P, C)
    m = med(nb[:, _A], nb[:, _B], nb[:, _C])  # (N, C)
    rel = nb - m[:, None, :]
    inputs = np.concatenate([rel.transpose(0, 2, 1).reshape(len(ys), c * N_POS), m - 128], axis=1)
    return inputs.astype(np.int32), m.astype(np.int32)


def all_pixels(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of every pixel in wavefront order (diagonal t = x + 2y, then y)."""
    ys, xs = np.mgrid[0:h, 0:w]
    ys, xs = ys.ravel(), xs.ravel()
    order = np.lexsort((ys, xs + 2 * ys))
    return ys[order].astype(np.int64), xs[order].astype(np.int64)


def diagonals(h: int, w: int) -> np.ndarray:
    """Start offsets of each diagonal in the :func:`all_pixels` order (len = steps + 1)."""
    ys, xs = all_pixels(h, w)
    t = xs + 2 * ys
    return np.searchsorted(t, np.arange(w + 2 * (h - 1) + 1))
