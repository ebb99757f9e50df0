"""Causal pixel contexts for predictive lossless coding, and the wavefront decode schedule.

A pixel (y, x) is predicted from already-coded pixels in the rows above and to its left, in
every colour channel (``small``: 11 neighbours in two rows; ``large``: 19 in three rows). Pixels
outside the image read as 0. Every neighbour (dy, dx) satisfies dx + 2 dy < 0, so each pixel
on the diagonal t = x + 2y depends only on diagonals < t, and the decoder predicts a whole
diagonal per network call.

Everything here is integer numpy: the encoder (all pixels at once), the decoder (one diagonal
at a time) and the training sampler call the same :func:`gather` on a padded canvas, so their
network inputs are identical by construction.
"""

from __future__ import annotations

import numpy as np

# (dy, dx) of the causal neighbours; (0,-1) = a (left), (-1,0) = b (above), (-1,-1) = c.
SMALL: tuple[tuple[int, int], ...] = (
    (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2),
    (-1, -2), (-1, -1), (-1, 0), (-1, 1),
    (0, -2), (0, -1),
)
LARGE: tuple[tuple[int, int], ...] = (
    (-3, -1), (-3, 0), (-3, 1), (-3, 2),
    (-2, -3), (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-2, 3),
    (-1, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1),
    (0, -3), (0, -2), (0, -1),
)
CONTEXTS = {"small": SMALL, "large": LARGE}


class Context:
    """A causal neighbourhood: which pixels a prediction reads, and the padded canvas."""

    def __init__(self, offsets: tuple[tuple[int, int], ...] | np.ndarray = SMALL) -> None:
        self.offsets = tuple((int(dy), int(dx)) for dy, dx in np.asarray(offsets).reshape(-1, 2))
        for dy, dx in self.offsets:  # causal for the diagonal order t = x + 2y
            if dy > 0 or dx + 2 * dy >= 0:
                raise ValueError(f"offset {(dy, dx)} is not causal for diagonal decoding")
        try:
            self._abc = [self.offsets.index(o) for o in ((0, -1), (-1, 0), (-1, -1))]
        except ValueError:
            raise ValueError("a context needs the left, above and above-left pixels") from None
        self.top = max(-dy for dy, _ in self.offsets)
        self.left = max(max(-dx for _, dx in self.offsets), 0)
        self.right = max(max(dx for _, dx in self.offsets), 0)
        self.n_pos = len(self.offsets)

    def n_inputs(self, channels: int) -> int:
        """Trunk input width: neighbours minus the channel's MED, plus the MED."""
        return channels * (self.n_pos + 1)

    def canvas(self, h: int, w: int, c: int = 3) -> np.ndarray:
        """An all-zero padded canvas for an (h, w, c) image."""
        return np.zeros((h + self.top, w + self.left + self.right, c), dtype=np.int32)

    def pad(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) uint8 -> zero-padded int32 canvas the contexts read from."""
        h, w, c = image.shape
        out = self.canvas(h, w, c)
        out[self.top:, self.left:self.left + w] = image
        return out

    def interior(self, canvas: np.ndarray, h: int, w: int) -> np.ndarray:
        return canvas[self.top:self.top + h, self.left:self.left + w]

    def gather(self, canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Network inputs for pixels (ys, xs) of a canvas from :meth:`pad`.

        Returns ``(inputs, meds)``: inputs (N, C*(P+1)) int32 laid out channel by channel
        as [neighbour - MED for each offset] + [MED - 128]; meds (N, C) int32 MED predictions.
        """
        hp, wp, c = canvas.shape
        flat = canvas.reshape(hp * wp, c)
        base = (ys + self.top) * wp + xs + self.left
        lin = np.array([dy * wp + dx for dy, dx in self.offsets], dtype=np.int64)
        nb = flat[base[:, None] + lin[None, :]]  # (N, P, C)
        a, b, cc = (nb[:, i] for i in self._abc)
        m = med(a, b, cc)
        rel = nb - m[:, None, :]
        inputs = np.concatenate([rel.transpose(0, 2, 1).reshape(len(ys), c * self.n_pos), m - 128],
                                axis=1)
        return inputs.astype(np.int32), m.astype(np.int32)


def med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """LOCO-I / JPEG-LS median edge detector prediction."""
    mx, mn = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))


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
