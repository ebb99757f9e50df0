"""Image quality and rate metrics, with the conventions of CompressAI (design.md).

All functions take 8-bit arrays shaped HxW or HxWxC (uint8, or anything holding 0..255).
PSNR is computed per image on 8-bit RGB; averaging over images is the caller's job.
MS-SSIM follows pytorch_msssim exactly (it is what computes it).
"""

from __future__ import annotations

import math

import numpy as np


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return a.astype(np.float64), b.astype(np.float64)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all pixels and channels, in 8-bit units."""
    x, y = _pair(a, b)
    return float(np.mean((x - y) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB (inf for identical images)."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (skimage, Gaussian-free 7x7 window, data range 255, mean over channels)."""
    from skimage.metrics import structural_similarity

    x, y = _pair(a, b)
    if min(x.shape[:2]) < 7:
        win = min(x.shape[:2]) | 1  # odd window no larger than the image
        if win < 3:
            return 1.0 if np.array_equal(x, y) else float("nan")
    else:
        win = 7
    return float(structural_similarity(x, y, data_range=255.0, channel_axis=-1, win_size=win))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM as pytorch_msssim computes it (RGB, data range 255); NaN if the image is
    too small for its five scales (shorter side <= 160)."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    x, y = _pair(a, b)
    if min(x.shape[:2]) <= 160:
        return float("nan")
    tx = torch.from_numpy(x).permute(2, 0, 1)[None]
    ty = torch.from_numpy(y).permute(2, 0, 1)[None]
    return float(_ms_ssim(tx, ty, data_range=255.0, size_average=True))


def bpp(nbytes: int, width: int, height: int) -> float:
    """Bits per pixel of a whole file (header included) for a width x height image."""
    if width <= 0 or height <= 0:
        raise ValueError("image size must be positive")
    return nbytes * 8.0 / (width * height)


def compression_ratio(bits_per_pixel: float, uncompressed_bpp: float = 24.0) -> float:
    """Compression ratio as seed 000 defines it: 24 / bpp for 8-bit RGB."""
    return math.inf if bits_per_pixel == 0 else uncompressed_bpp / bits_per_pixel
