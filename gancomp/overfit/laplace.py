"""Discretized Laplace distributions: integer tables for coding, a smooth bit count for fitting.

The entropy model predicts, per latent, a location ``mu`` and a log-scale. For coding both are
quantized: ``mu`` to 1/MEAN_FRAC, the log-scale to the grid LOG_B0 + i/8 (i < N_SCALES). Each
(scale, fraction of mu) pair is one row of an integer frequency table over the 2R+1 values
floor(mu)-R .. floor(mu)+R plus an escape column. The table is built with integer arithmetic
only, from the hard-coded fixed-point ratios RHO_Q below, so every machine builds the same
table without evaluating a float exp (the lossless codec stores its table in its weights for
the same reason).

For fitting, :func:`bits` is the exact continuous counterpart (ideal code length of an
integer-binned Laplace), written in the log domain so that it has useful gradients far out in
the tails.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

N_SCALES = 48               # log-scale grid LOG_B0 + i / 8, i in 0..47 (b = 0.030 .. 10.75)
LOG_B0 = -3.5
LOG_STEP_BITS = 3           # 8 steps per unit of log-scale
MEAN_FRAC_BITS = 3
MEAN_FRAC = 1 << MEAN_FRAC_BITS
R = 32                      # columns cover floor(mu) - R .. floor(mu) + R, then the escape
K = 2 * R + 2
TABLE_BITS = 20             # frequencies sum to about 2^20, each at least 1
LOG_B_MAX = LOG_B0 + (N_SCALES - 1) / 8

# round(exp(-1 / (2 * MEAN_FRAC * b_i)) * 2^30): the Laplace decay per 1/16 pixel for scale i.
# Fixed here (not computed) so that the integer tables are identical everywhere.
RHO_Q = (
    135529471, 172843597, 214221090, 258892111, 305991952, 354626758, 403929503, 453102773,
    501447535, 548378935, 593431250, 636254580, 676605816, 714336160, 749376998, 781725510,
    811430948, 838582162, 863296692, 885711526, 905975483, 924243119, 940669972, 955408967,
    968607797, 980407102, 990939289, 1000327855, 1008687096, 1016122104, 1022728986,
    1028595212, 1033800083, 1038415237, 1042505208, 1046127973, 1049335508, 1052174316,
    1054685934, 1056907409, 1058871740, 1060608288, 1062143152, 1063499509, 1064697929,
    1065756653, 1066691848, 1067517836,
)


@lru_cache(maxsize=1)
def table() -> np.ndarray:
    """Integer frequencies (N_SCALES * MEAN_FRAC, K), int64, row = scale * MEAN_FRAC + frac.

    Column j codes the value floor(mu) + j - R for mu = floor(mu) + frac / MEAN_FRAC; the last
    column is the escape (the mass outside the window)."""
    two_f = 2 * MEAN_FRAC
    n_pow = two_f * (R + 1) + MEAN_FRAC + 1
    rho = np.array(RHO_Q, dtype=np.int64)
    pw = np.empty((N_SCALES, n_pow), dtype=np.int64)   # rho^n at 2^30
    pw[:, 0] = 1 << 30
    for n in range(1, n_pow):
        pw[:, n] = (pw[:, n - 1] * rho + (1 << 29)) >> 30
    one = 1 << 31

    def cdf(e: np.ndarray) -> np.ndarray:  # e: position in units of 1/(2F) relative to mu
        a = np.abs(e)
        p = pw[:, a]                       # 0.5 * rho^|e| at 2^31
        return np.where(e <= 0, p, one - p)

    out = np.empty((N_SCALES, MEAN_FRAC, K), dtype=np.int64)
    j = np.arange(2 * R + 1)
    for m in range(MEAN_FRAC):
        lo = two_f * (j - R) - 2 * m - MEAN_FRAC
        c_lo, c_hi = cdf(lo), cdf(lo + two_f)
        f = c_hi - c_lo
        esc = one - (c_hi[:, -1] - c_lo[:, 0])
        shift = 31 - TABLE_BITS
        out[:, m, :-1] = np.maximum(1, (f + (1 << (shift - 1))) >> shift)
        out[:, m, -1] = np.maximum(1, (esc + (1 << (shift - 1))) >> shift)
    return out.reshape(N_SCALES * MEAN_FRAC, K)


@lru_cache(maxsize=1)
def probs() -> np.ndarray:
    """The table as float64 rows for constriction (normalized; same numbers everywhere)."""
    t = table().astype(np.float64)
    return t / t.sum(axis=1, keepdims=True)


@lru_cache(maxsize=1)
def row_bits() -> np.ndarray:
    """Code length in bits of every (row, column): for rate estimates and decisions."""
    t = table().astype(np.float64)
    return np.log2(t.sum(axis=1, keepdims=True)) - np.log2(t)


def bits(y, mu, log_scale):
    """Ideal bits of integer-valued ``y`` under Laplace(mu, exp(log_scale)) binned to
    [y - 1/2, y + 1/2] (torch tensors; differentiable in all three)."""
    import torch

    ls = log_scale.clamp(LOG_B0, LOG_B_MAX)
    inv = torch.exp(-ls)
    d = (y - mu).abs()
    log2e = 1.4426950408889634
    # |y - mu| > 1/2: P = 0.5 e^{-(d - 1/2)/b} (1 - e^{-1/b})
    far = 1.0 + (d - 0.5) * inv * log2e - torch.log2(-torch.expm1(-inv))
    # |y - mu| <= 1/2: P = 1 - e^{-1/(2b)} cosh(d / b)
    dn = torch.minimum(d, torch.full_like(d, 0.5))
    near_p = 1.0 - 0.5 * (torch.exp((dn - 0.5) * inv) + torch.exp((-dn - 0.5) * inv))
    near = -torch.log2(near_p.clamp_min(2.0 ** -TABLE_BITS))
    return torch.where(d > 0.5, far, near).clamp_max(TABLE_BITS + 6)


def scale_of(i: int) -> float:
    """Laplace scale of table scale index i (for documentation and tests)."""
    return math.exp(LOG_B0 + i / 8)
