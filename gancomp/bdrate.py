"""Bjøntegaard deltas: the average rate (BD-rate) or quality (BD-PSNR) difference of two
rate-distortion curves, as CompressAI, JVET and the learned-compression literature report them.

BD-rate (VCEG-M33): fit log(rate) as a cubic polynomial of quality for each curve, integrate
both fits over the quality range the two curves share, and turn the mean log difference into
a percentage: negative means the test codec needs fewer bits than the anchor for the same
quality. BD-PSNR swaps the axes (quality as a cubic of log-rate, over the shared log-rate range).
``method="pchip"`` uses the piecewise-cubic variant (JVET CTC / CompressAI's ``piecewise=1``),
which does not overshoot between far-apart points.

MS-SSIM is fitted in decibels, ``-10 log10(1 - MS-SSIM)``, the scale on which RD plots of
learned codecs show it and on which the curves are close to linear.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import InputError

MIN_POINTS = 4  # a cubic needs four points


def msssim_db(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """MS-SSIM on the decibel scale used for fitting and plotting."""
    v = np.asarray(values, dtype=np.float64)
    return -10.0 * np.log10(np.maximum(1.0 - v, 1e-12))


def _clean(rate: Sequence[float], quality: Sequence[float], label: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise InputError(f"{label}: {r.size} rates but {q.size} quality values")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    if r.size < MIN_POINTS:
        raise InputError(f"{label}: BD needs at least {MIN_POINTS} finite RD points, got {r.size}")
    order = np.argsort(q)
    return r[order], q[order]


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Integral over [lo, hi] of the curve y(x) fitted through the points."""
    if method == "cubic":
        p = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(p, hi) - np.polyval(p, lo))
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator

        ux, idx = np.unique(x, return_index=True)  # pchip needs strictly increasing x
        if ux.size < 2:
            raise InputError("BD: quality values are all equal")
        return float(PchipInterpolator(ux, y[idx]).integrate(lo, hi))
    raise InputError(f"unknown BD method {method!r} (cubic or pchip)")


def bd_rate(anchor_rate: Sequence[float], anchor_quality: Sequence[float],
            test_rate: Sequence[float], test_quality: Sequence[float],
            method: str = "cubic") -> float:
    """Average bit-rate difference of the test curve against the anchor, in percent
    (negative = the test codec saves bits). Raises InputError when the curves have too few
    points or do not overlap in quality."""
    ra, qa = _clean(anchor_rate, anchor_quality, "anchor")
    rt, qt = _clean(test_rate, test_quality, "test")
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if not hi > lo:
        raise InputError("BD-rate: the two curves do not overlap in quality")
    ia = _integral(qa, np.log(ra), lo, hi, method)
    it = _integral(qt, np.log(rt), lo, hi, method)
    return (math.exp((it - ia) / (hi - lo)) - 1.0) * 100.0


def bd_quality(anchor_rate: Sequence[float], anchor_quality: Sequence[float],
               test_rate: Sequence[float], test_quality: Sequence[float],
               method: str = "cubic") -> float:
    """Average quality difference (test minus anchor) at equal rate, in the quality's units
    (dB for PSNR: this is BD-PSNR). Raises InputError like :func:`bd_rate`."""
    ra, qa = _clean(anchor_rate, anchor_quality, "anchor")
    rt, qt = _clean(test_rate, test_quality, "test")
    la, lt = np.log(ra), np.log(rt)
    oa, ot = np.argsort(la), np.argsort(lt)
    la, qa, lt, qt = la[oa], qa[oa], lt[ot], qt[ot]
    lo, hi = max(la.min(), lt.min()), min(la.max(), lt.max())
    if not hi > lo:
        raise InputError("BD-PSNR: the two curves do not overlap in rate")
    ia = _integral(la, qa, lo, hi, method)
    it = _integral(lt, qt, lo, hi, method)
    return (it - ia) / (hi - lo)


def bd_psnr(anchor_rate: Sequence[float], anchor_psnr: Sequence[float],
            test_rate: Sequence[float], test_psnr: Sequence[float], method: str = "cubic") -> float:
    """BD-PSNR in dB (positive = the test codec has higher PSNR at the same rate)."""
    return bd_quality(anchor_rate, anchor_psnr, test_rate, test_psnr, method)
