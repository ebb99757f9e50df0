"""``kmeans``: the K-means colour baseline of seed 000 as a real codec.

The image is reduced to a palette of K colours found by K-means (k-means++ start, Lloyd
iterations on a pixel sample), and the per-pixel palette indices are entropy coded with an
adaptive model whose context is the indices above and above-left (already decoded rows),
so a whole row is coded per call.

Params: ``k`` colours, ``p`` the palette (k x C bytes, rows unique and sorted), ``h`` (files
since issue 12) a 32-bit hash of the geometry, palette and indices, so that a corrupt palette
behind a valid container checksum is refused instead of decoding to other colours.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..entropy import AdaptiveCoder
from ..errors import FormatError, InputError
from .base import Codec, Encoded, Option, clamp_quality, register

SAMPLE = 1 << 16
ITERATIONS = 25


def kmeans_palette(pixels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """K-means colour palette (k, C) float64 of an (N, C) pixel array; deterministic."""
    rng = np.random.default_rng(seed)
    x = pixels.astype(np.float64)
    if len(x) > SAMPLE:
        x = x[rng.choice(len(x), SAMPLE, replace=False)]
    uniq = np.unique(x, axis=0)
    if len(uniq) <= k:
        return uniq
    centers = [x[rng.integers(len(x))]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):  # k-means++ seeding
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centers.append(x[rng.choice(len(x), p=p)])
        d2 = np.minimum(d2, ((x - centers[-1]) ** 2).sum(1))
    c = np.array(centers)
    for _ in range(ITERATIONS):
        lab = _assign(x, c)
        sums = np.zeros_like(c)
        np.add.at(sums, lab, x)
        cnt = np.bincount(lab, minlength=len(c))[:, None]
        new = np.where(cnt > 0, sums / np.maximum(cnt, 1), c)
        if np.allclose(new, c):
            break
        c = new
    return c


def _assign(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    out = np.empty(len(x), dtype=np.int64)
    for a in range(0, len(x), 1 << 16):
        chunk = x[a:a + (1 << 16)]
        d = (chunk[:, None, :] - centers[None, :, :]) ** 2
        out[a:a + len(chunk)] = d.sum(2).argmin(1)
    return out


def _row_contexts(prev: np.ndarray | None, w: int, k: int) -> np.ndarray:
    if prev is None:
        return np.zeros(w, dtype=np.int64)
    upleft = np.concatenate([prev[:1], prev[:-1]])
    if k <= 16:
        return 1 + prev * k + upleft
    return 1 + prev


def _digest(h: int, w: int, c: int, pal: bytes, idx: np.ndarray) -> int:
    d = hashlib.blake2b(digest_size=4)
    d.update(np.array([h, w, c], dtype="<u4").tobytes() + pal)
    d.update(np.ascontiguousarray(idx, dtype="<u2").tobytes())
    return int.from_bytes(d.digest(), "little")


def _n_contexts(k: int) -> int:
    return 1 + (k * k if k <= 16 else k)


@register
class KMeansCodec(Codec):
    name = "kmeans"
    codec_id = 2
    version = 1
    channels = (1, 3)
    description = "K-means colour palette + context-coded indices (seed 000 baseline)"
    encode_options = (Option("colors", int, None, "palette size (instead of --quality)",
                             lo=2, hi=256),)

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [0.0, 14.3, 28.6, 42.9, 57.1, 71.4]  # 2, 4, 8, 16, 32, 64 colours

    @staticmethod
    def colors_for_quality(q: float) -> int:
        """quality 0..100 -> 2..256 colours, log-spaced (14.3 -> the seed's K=4)."""
        return int(round(2 ** (1 + 7 * q / 100)))

    def encode(self, image: np.ndarray, quality: float | None = None,
               **options: Any) -> Encoded:
        colors = self.encode_opts(options).get("colors")  # device: no transforms to place
        if colors is not None and quality is not None:
            raise InputError("give either --quality or --colors for the kmeans codec, not both")
        if colors is None:
            colors = self.colors_for_quality(clamp_quality(quality, 14.3))
        h, w, c = image.shape
        flat = image.reshape(-1, c)
        pal = np.clip(np.round(kmeans_palette(flat, int(colors))), 0, 255)
        pal = np.unique(pal, axis=0)
        idx = _assign(flat.astype(np.float64), pal).reshape(h, w)
        k = len(pal)
        coder = AdaptiveCoder(max(k, 2), _n_contexts(k), block=4096)
        prev = None
        for row in idx:
            coder.encode(row, _row_contexts(prev, w, k))
            prev = row
        pal_bytes = pal.astype(np.uint8).tobytes()
        params = {"k": k, "p": pal_bytes, "h": _digest(h, w, c, pal_bytes, idx)}
        return Encoded(params, [coder.finish()])

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        self.decode_opts(options)
        try:
            k, pal = int(params["k"]), params["p"]
            want = params.get("h")  # absent in files written before the hash
            want = None if want is None else int(want)
        except KeyError as exc:
            raise FormatError(f"kmeans parameter {exc} missing") from None
        if not (1 <= k <= 256) or not isinstance(pal, bytes) or len(pal) != k * channels \
                or len(streams) != 1 or (want is not None and not 0 <= want < 2 ** 32):
            raise FormatError("kmeans parameters malformed")
        palette = np.frombuffer(pal, dtype=np.uint8).reshape(k, channels)
        if k > 1 and not (np.diff(palette.astype(np.int64) @ (256 ** np.arange(channels)[::-1]))
                          > 0).all():
            raise FormatError("kmeans palette is not sorted and unique")
        coder = AdaptiveCoder.decoder(streams[0], max(k, 2), _n_contexts(k), block=4096)
        idx = np.empty((height, width), dtype=np.int64)
        prev = None
        for y in range(height):
            idx[y] = coder.decode(_row_contexts(prev, width, k))
            prev = idx[y]
        coder.check_end()
        if idx.max() >= k:
            raise FormatError("kmeans index out of range (stream desync)")
        if want is not None and _digest(height, width, channels, pal, idx) != want:
            raise FormatError("kmeans palette/index hash mismatch (corrupt palette or stream)")
        return palette[idx]
