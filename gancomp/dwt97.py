"""The CDF 9/7 wavelet (JPEG 2000's irreversible filter) by lifting, in numpy float64.

Whole-sample symmetric extension at both ends, so any length (odd, 1) transforms without
growth and without boundary ringing. Only elementwise float64 adds and multiplies are used
(no BLAS, no fused ops), so the inverse gives the same floats on every machine.

Layout: :func:`forward` returns ``(ll, details)`` with ``details[k]`` the (HL, LH, HH) bands
of level k, coarsest first (as pywt's wavedec2), for ``levels`` levels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import accel

# Lifting constants (JPEG 2000 Part 1, Annex F).
_A = -1.586134342059924
_B = -0.052980118572961
_G = 0.882911075530934
_D = 0.443506852043971
_K = 1.230174104914001


# The lifting steps in place, through one scratch buffer ``t`` shaped like ``s``: per sample one
# add of the two (whole-sample symmetric) neighbours, one multiply, one add, with no
# temporaries (the same float operations as the textbook ``d += coef * (s[i] + s[i + 1])``).

def _lift_d(d: np.ndarray, s: np.ndarray, coef: float, t: np.ndarray, sub: bool) -> None:
    """d[i] (+/-)= coef * (s[i] + s[i + 1]), s mirrored at the end."""
    nd, ns = d.shape[0], s.shape[0]
    u = t[:nd]
    m = nd if ns > nd else nd - 1
    np.add(s[:m], s[1:m + 1], out=u[:m])
    if m < nd:
        np.add(s[nd - 1], s[nd - 1], out=u[nd - 1])
    u *= coef
    if sub:
        d -= u
    else:
        d += u


def _lift_s(s: np.ndarray, d: np.ndarray, coef: float, t: np.ndarray, sub: bool) -> None:
    """s[i] (+/-)= coef * (d[i - 1] + d[i]), d mirrored at both ends."""
    ns, nd = s.shape[0], d.shape[0]
    u = t[:ns]
    np.add(d[0], d[0], out=u[0])
    np.add(d[:nd - 1], d[1:nd], out=u[1:nd])
    if ns > nd:
        np.add(d[nd - 1], d[nd - 1], out=u[nd])
    u *= coef
    if sub:
        s -= u
    else:
        s += u


def _fwd_axis0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    s = x[0::2].copy()
    d = x[1::2].copy()
    if n < 2:
        return s, d
    t = np.empty_like(s)
    _lift_d(d, s, _A, t, False)
    _lift_s(s, d, _B, t, False)
    _lift_d(d, s, _G, t, False)
    _lift_s(s, d, _D, t, False)
    s *= 1.0 / _K
    d *= _K / 2.0
    return s, d


def _inv_axis0(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    ns, nd = s.shape[0], d.shape[0]
    out = np.empty((ns + nd,) + s.shape[1:], dtype=np.float64)
    if nd == 0:
        out[:] = s
        return out
    s = s * _K
    d = d * (2.0 / _K)
    t = np.empty_like(s)
    _lift_s(s, d, _D, t, True)
    _lift_d(d, s, _G, t, True)
    _lift_s(s, d, _B, t, True)
    _lift_d(d, s, _A, t, True)
    out[0::2] = s
    out[1::2] = d
    return out


def forward(x: np.ndarray, levels: int):
    """2-D forward transform of a float array: ``(ll, [(hl, lh, hh), ...])`` coarsest first.
    With the compiled loops (:mod:`gancomp.accel`): the same floats, C-contiguous bands."""
    if accel.ENABLED and levels > 0:
        return _forward_c(x, levels)
    ll = np.asarray(x, dtype=np.float64)
    details = []
    for _ in range(levels):
        lo, hi = _fwd_axis0(ll)                      # vertical split
        a, b = _fwd_axis0(lo.T)                      # horizontal on the low rows
        c, d = _fwd_axis0(hi.T)
        ll = a.T
        details.append((b.T.copy(), c.T.copy(), d.T.copy()))  # HL, LH, HH
    return ll, details[::-1]


def inverse(ll: np.ndarray, details) -> np.ndarray:
    """Inverse of :func:`forward`."""
    if accel.ENABLED and len(details):
        return _inverse_c(ll, details)
    x = np.asarray(ll, dtype=np.float64)
    for hl, lh, hh in details:
        lo = _inv_axis0(x.T, hl.T).T
        hi = _inv_axis0(lh.T, hh.T).T
        x = _inv_axis0(lo, hi)
    return x


def _forward_c(x: np.ndarray, levels: int):
    ll = np.ascontiguousarray(x, dtype=np.float64)
    details = []
    for _ in range(levels):
        h, w = ll.shape
        h2, hd, w2, wd = (h + 1) // 2, h // 2, (w + 1) // 2, w // 2
        bands = [np.empty(s) for s in ((h2, w2), (h2, wd), (hd, w2), (hd, wd))]
        accel._w2c.dwt_fwd(ll, (h, w), *bands)
        ll = bands[0]
        details.append(tuple(bands[1:]))
    return ll, details[::-1]


def _inverse_c(ll: np.ndarray, details) -> np.ndarray:
    x = np.ascontiguousarray(ll, dtype=np.float64)
    for hl, lh, hh in details:
        h, w = x.shape[0] + lh.shape[0], x.shape[1] + hl.shape[1]
        out = np.empty((h, w))
        accel._w2c.dwt_inv(x, *(np.ascontiguousarray(b, dtype=np.float64) for b in (hl, lh, hh)),
                           (h, w), out)
        x = out
    return x


def band_shapes(h: int, w: int, levels: int) -> tuple[tuple[int, int], list[tuple[tuple[int, int], ...]]]:
    """Shapes of the LL band and of each level's (HL, LH, HH) bands, coarsest first."""
    shapes = []
    for _ in range(levels):
        hl, wl = (h + 1) // 2, (w + 1) // 2
        hh_, wh = h // 2, w // 2
        shapes.append(((hl, wh), (hh_, wl), (hh_, wh)))
        h, w = hl, wl
    return (h, w), shapes[::-1]


@lru_cache(maxsize=None)
def _gains_1d(levels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Synthesis energy of a unit coefficient: (low after k levels, high at level k), k = 1..L,
    measured far from the borders on a long signal."""
    n = 16 << levels
    low, high = [], []
    for k in range(1, levels + 1):
        for band in ("lo", "hi"):
            m = n >> k
            s = np.zeros((m, 1))
            d = np.zeros((m, 1))
            (s if band == "lo" else d)[m // 2, 0] = 1.0
            x = _inv_axis0(s, d)
            for _ in range(k - 1):
                x = _inv_axis0(x, np.zeros_like(x))
            (low if band == "lo" else high).append(float((x ** 2).sum()))
    return tuple(low), tuple(high)


def synthesis_gains(levels: int) -> tuple[float, list[tuple[float, float, float]]]:
    """Energy gains of the LL band and each level's (HL, LH, HH) bands, coarsest first: the
    squared-error weight of a coefficient in the image domain (for MSE-optimal steps)."""
    if levels == 0:
        return 1.0, []
    low, high = _gains_1d(levels)
    out = []
    for k in range(levels, 0, -1):   # coarsest (level L) first
        lk, hk = low[k - 1], high[k - 1]
        out.append((hk * lk, lk * hk, hk * hk))
    return low[levels - 1] ** 2, out
