"""Block selection and block coding for ``ablative`` (seed 004), in numpy only (the trainer
uses the same functions, so training inputs look exactly like decoded files).

- :func:`log_response`: |Laplacian of Gaussian| of the luma (the seed's edge detector);
- :func:`select_blocks`: keep the 8x8 blocks with the strongest edges plus a share of random
  blocks elsewhere (the seed's "block + random sampling");
- :func:`quantize_blocks` / :func:`dequantize_blocks`: JPEG-style YCbCr 8x8 DCT with the JPEG
  Annex K tables scaled by a quality (IJG formula), for the kept blocks only.
"""

from __future__ import annotations

import numpy as np

B = 8

# JPEG Annex K quantization tables (luma, chroma)
Q_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64).reshape(8, 8)
Q_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32,
    np.float64).reshape(8, 8)


def _dct_matrix() -> np.ndarray:
    k = np.arange(B)[:, None]
    n = np.arange(B)[None, :]
    c = np.cos(np.pi * (2 * n + 1) * k / (2 * B)) * np.sqrt(2.0 / B)
    c[0] /= np.sqrt(2.0)
    return c


DCT = _dct_matrix()


def zigzag_order() -> np.ndarray:
    """Indexes 0..63 of an 8x8 block in JPEG zigzag order."""
    idx = sorted(((i + j, j if (i + j) % 2 else i, i * B + j) for i in range(B) for j in range(B)))
    return np.array([t[2] for t in idx])


ZIGZAG = zigzag_order()


def qtables(quality: float) -> np.ndarray:
    """(3, 8, 8) quantizer steps for Y, Cb, Cr at IJG quality 1..100."""
    q = float(np.clip(quality, 1, 100))
    s = 5000 / q if q < 50 else 200 - 2 * q
    t = [np.clip(np.floor((tab * s + 50) / 100), 1, 255) for tab in (Q_LUMA, Q_CHROMA, Q_CHROMA)]
    return np.stack(t)


def to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return np.stack([y, cb, cr], -1)


def to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = ycc[..., 0], ycc[..., 1] - 128, ycc[..., 2] - 128
    return np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], -1)


def pad_to_blocks(img: np.ndarray, mult: int = B) -> np.ndarray:
    h, w = img.shape[:2]
    return np.pad(img, ((0, -h % mult), (0, -w % mult)) + ((0, 0),) * (img.ndim - 2), mode="edge")


def log_response(rgb: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """|LoG| of the luma (Gaussian blur then 5-point Laplacian), same size as the image."""
    y = to_ycbcr(rgb)[..., 0]
    r = int(np.ceil(3 * sigma))
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    p = np.pad(y, r, mode="reflect" if min(y.shape) > r else "edge")
    p = sum(g[i] * p[:, i:i + y.shape[1]] for i in range(2 * r + 1))
    p = sum(g[i] * p[i:i + y.shape[0]] for i in range(2 * r + 1))
    q = np.pad(p, 1, mode="edge")
    lap = q[:-2, 1:-1] + q[2:, 1:-1] + q[1:-1, :-2] + q[1:-1, 2:] - 4 * p
    return np.abs(lap)


def block_scores(rgb: np.ndarray) -> np.ndarray:
    """Edge score per 8x8 block (image padded to a multiple of 8): mean |LoG|."""
    a = pad_to_blocks(log_response(rgb))
    h, w = a.shape
    return a.reshape(h // B, B, w // B, B).mean(axis=(1, 3))


def select_blocks(rgb: np.ndarray, fraction: float, random_share: float = 0.25,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Block mask (True = keep) with round(fraction * blocks) blocks: (1 - random_share) of
    them with the highest edge scores, the rest drawn at random from the others."""
    s = block_scores(rgb)
    n = int(round(np.clip(fraction, 0, 1) * s.size))
    n_edge = int(round(n * (1 - random_share)))
    order = np.argsort(-s, axis=None, kind="stable")
    keep = np.zeros(s.size, bool)
    keep[order[:n_edge]] = True
    rest = order[n_edge:]
    if n - n_edge > 0 and rest.size:
        rng = rng or np.random.default_rng(0)
        keep[rng.choice(rest, size=min(n - n_edge, rest.size), replace=False)] = True
    return keep.reshape(s.shape)


def _blocks(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return plane.reshape(h // B, B, w // B, B).transpose(0, 2, 1, 3)


def quantize_blocks(rgb: np.ndarray, mask: np.ndarray, quality: float) -> np.ndarray:
    """Integer DCT coefficients (n_kept, 3, 64) of the kept blocks, natural order, raster
    order of blocks. ``rgb`` is padded to a multiple of 8 here."""
    ycc = to_ycbcr(pad_to_blocks(rgb)) - 128.0
    qt = qtables(quality)
    out = []
    for c in range(3):
        blk = _blocks(ycc[..., c])[mask]                          # (n, 8, 8)
        coef = np.einsum("ij,njk,lk->nil", DCT, blk, DCT)
        out.append(np.rint(coef / qt[c]).reshape(-1, 64))
    return np.stack(out, 1).astype(np.int64)


def dequantize_blocks(coefs: np.ndarray, mask: np.ndarray, quality: float) -> np.ndarray:
    """(H8, W8, 3) float RGB (0..255 scale, unclipped) with the kept blocks filled and zeros
    elsewhere; H8, W8 = 8 * mask.shape. Plain float64 einsum: same values everywhere."""
    qt = qtables(quality)
    bh, bw = mask.shape
    ycc = np.zeros((bh, bw, B, B, 3))
    for c in range(3):
        coef = coefs[:, c].reshape(-1, 8, 8).astype(np.float64) * qt[c]
        ycc[mask, :, :, c] = np.einsum("ji,njk,kl->nil", DCT, coef, DCT) + 128.0
    rgb = to_rgb(ycc.transpose(0, 2, 1, 3, 4).reshape(bh * B, bw * B, 3))
    m = np.repeat(np.repeat(mask, B, 0), B, 1)
    return rgb * m[..., None]


def simulate(rgb: np.ndarray, fraction: float, quality: float, random_share: float = 0.25,
             rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What the decoder sees for an image: (kept pixels as uint8 with zeros elsewhere,
    pixel mask), both at the image's size padded to a multiple of 8."""
    mask = select_blocks(rgb, fraction, random_share, rng)
    coefs = quantize_blocks(rgb, mask, quality)
    kept = np.clip(np.rint(dequantize_blocks(coefs, mask, quality)), 0, 255).astype(np.uint8)
    return kept, np.repeat(np.repeat(mask, B, 0), B, 1)
