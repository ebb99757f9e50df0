"""Image quality and rate metrics, with the conventions of CompressAI (design.md).

All functions take 8-bit arrays shaped HxW or HxWxC (uint8, or anything holding 0..255).
PSNR is computed per image on 8-bit RGB; averaging over images is the caller's job.
SSIM is scikit-image's (7x7 uniform window, sample covariance); MS-SSIM is pytorch_msssim's
(11-tap Gaussian, sigma 1.5, five scales). Both are computed here in vectorized numpy/scipy on
float64 with the same windows, cropping, pooling and weights, agreeing with those libraries to
1e-9 (tests/test_metrics_fast.py), about 10x faster; :class:`Scorer` also computes the
reference image's side of every filter once, for the many decoded versions a comparison scores.
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
    """SSIM (skimage's definition: 7x7 uniform window, data range 255, mean over channels)."""
    x, y = _pair(a, b)
    if min(x.shape[:2]) >= 7:
        return Scorer(x, ms_ssim=False).ssim(y)
    from skimage.metrics import structural_similarity

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
    x, y = _pair(a, b)
    if min(x.shape[:2]) <= 160:
        return float("nan")
    return Scorer(x, ssim=False).ms_ssim(y)


def bpp(nbytes: int, width: int, height: int) -> float:
    """Bits per pixel of a whole file (header included) for a width x height image."""
    if width <= 0 or height <= 0:
        raise ValueError("image size must be positive")
    return nbytes * 8.0 / (width * height)


def compression_ratio(bits_per_pixel: float, uncompressed_bpp: float = 24.0) -> float:
    """Compression ratio as seed 000 defines it: 24 / bpp for 8-bit RGB."""
    return math.inf if bits_per_pixel == 0 else uncompressed_bpp / bits_per_pixel


# ---------------------------------------------------------------------------- fast path

_K1, _K2, _R = 0.01, 0.03, 255.0
_C1, _C2 = (_K1 * _R) ** 2, (_K2 * _R) ** 2
_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_GAUSS: np.ndarray | None = None


def _gauss() -> np.ndarray:
    """pytorch_msssim's window (11 taps, sigma 1.5), taken from it: it is built in float32
    by torch, whose exp and sum differ from numpy's in the last bits."""
    global _GAUSS
    if _GAUSS is None:
        from pytorch_msssim.ssim import _fspecial_gauss_1d

        _GAUSS = _fspecial_gauss_1d(11, 1.5).numpy().ravel().astype(np.float64)
    return _GAUSS


def _blur(x: np.ndarray) -> np.ndarray:
    """Gaussian 'valid' filtering over H then W of an (H, W, C) array (no padding)."""
    from scipy.ndimage import correlate1d

    g = _gauss()
    y = correlate1d(x, g, axis=0, mode="constant")[5:-5]
    return correlate1d(y, g, axis=1, mode="constant")[:, 5:-5]


def _box(x: np.ndarray) -> np.ndarray:
    """scikit-image's SSIM mean: a 7x7 uniform filter (reflect borders) per channel."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(x, size=(7, 7, 1))


def _pool(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling as torch's avg_pool2d(padding=size % 2): an odd side gets a zero
    row/column in front and the divisor stays 4."""
    h, w, c = x.shape
    if h % 2:
        x = np.concatenate([np.zeros((1, w, c)), x], axis=0)
        h += 1
    if w % 2:
        x = np.concatenate([np.zeros((h, 1, c)), x], axis=1)
        w += 1
    h2, w2 = h // 2, w // 2
    return x[:h2 * 2, :w2 * 2].reshape(h2, 2, w2, 2, c).sum(axis=(1, 3)) / 4.0


class Scorer:
    """MSE, PSNR, SSIM and MS-SSIM of decoded images against one reference, with the
    reference's filtered maps computed once (a comparison scores dozens of decodes of it)."""

    def __init__(self, ref: np.ndarray, *, ssim: bool = True, ms_ssim: bool = True) -> None:
        x = np.asarray(ref)
        if x.ndim == 2:
            x = x[..., None]
        self.x = x.astype(np.float64)
        self.shape = x.shape
        self._ssim = None
        self._ms: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        if ssim and min(x.shape[:2]) >= 7:
            ux = _box(self.x)
            self._ssim = (ux, _box(self.x * self.x) - ux * ux)
        if ms_ssim and min(x.shape[:2]) > 160:
            self._ms = []
            cur = self.x
            for level in range(len(_MS_WEIGHTS)):
                mu = _blur(cur)
                self._ms.append((cur, mu, _blur(cur * cur) - mu * mu))
                if level < len(_MS_WEIGHTS) - 1:
                    cur = _pool(cur)

    def _other(self, rec: np.ndarray) -> np.ndarray:
        y = np.asarray(rec)
        if y.ndim == 2:
            y = y[..., None]
        if y.shape != self.shape:
            raise ValueError(f"image shapes differ: {self.shape} vs {y.shape}")
        return y.astype(np.float64)

    def ssim(self, rec: np.ndarray) -> float:
        """scikit-image's SSIM (7x7 window, sample covariance), mean over channels."""
        if self._ssim is None:
            return ssim(self.x, rec)
        return self._ssim_f(self._other(rec))

    def _ssim_f(self, y: np.ndarray) -> float:
        ux, vx0 = self._ssim
        uy = _box(y)
        cov = 49.0 / 48.0
        vx = cov * vx0
        vy = cov * (_box(y * y) - uy * uy)
        vxy = cov * (_box(self.x * y) - ux * uy)
        s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)) / ((ux ** 2 + uy ** 2 + _C1) * (vx + vy + _C2))
        return float(np.mean([s[3:-3, 3:-3, c].mean(dtype=np.float64) for c in range(s.shape[2])]))

    def ms_ssim(self, rec: np.ndarray) -> float:
        """pytorch_msssim's MS-SSIM (RGB, data range 255); NaN when a side is <= 160."""
        if self._ms is None:
            return float("nan")
        return self._ms_f(self._other(rec))

    def _ms_f(self, cur: np.ndarray) -> float:
        vals = []
        for level, (x, mu1, s1) in enumerate(self._ms):
            mu2 = _blur(cur)
            s2 = _blur(cur * cur) - mu2 * mu2
            s12 = _blur(x * cur) - mu1 * mu2
            cs_map = (2 * s12 + _C2) / (s1 + s2 + _C2)
            if level < len(self._ms) - 1:
                vals.append(np.maximum(cs_map.reshape(-1, cs_map.shape[2]).mean(axis=0), 0))
                cur = _pool(cur)
            else:
                ssim_map = ((2 * mu1 * mu2 + _C1) / (mu1 ** 2 + mu2 ** 2 + _C1)) * cs_map
                vals.append(np.maximum(ssim_map.reshape(-1, ssim_map.shape[2]).mean(axis=0), 0))
        per_channel = np.prod([v ** w for v, w in zip(vals, _MS_WEIGHTS)], axis=0)
        return float(per_channel.mean())

    def scores(self, rec: np.ndarray) -> dict[str, float]:
        """All four metrics of one decoded image (converted to float once)."""
        y = self._other(rec)
        m = float(np.mean((self.x - y) ** 2))
        return {"mse": m, "psnr": math.inf if m == 0 else 10.0 * math.log10(_R * _R / m),
                "ssim": self._ssim_f(y) if self._ssim is not None else ssim(self.x, y),
                "ms_ssim": self._ms_f(y) if self._ms is not None else float("nan")}
