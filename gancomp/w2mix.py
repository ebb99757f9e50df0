"""wavelet2 format v4: a trained integer mixer over the v3 context model (issue 10, item 3).

v3 codes each detail coefficient as one joint symbol (0, +-1, +-2, +-3 or more) whose
probabilities come from four adaptive binary models (significance, > 1, > 2, sign; chain
rule). v4 keeps those models, their contexts and their adaptation, and replaces each row by

    z_k = sum over the four models m of -((a[c][k] * -L_mk) >> 6)
          + S[sig_ctx][k] + G[g_ctx % 6][k] + N[s_ctx][k]
    p_k ~ E[min(max(z) - z_k, len(E) - 1)]   (integers, passed to constriction as float64,
                                             which normalizes them)

where ``L_mk`` is model m's share of the adaptive row's log2-probability of symbol k in 1/256
bit (sig: log P(0) for k = 0, log P(1) else; gt1, rest, sign: the term symbol k uses), from
the integer counts through a stored log table (``lg``: round(256 log2 n), n < len(lg); larger
counts are halved first, adding 256 per halving), ``a[c][k]`` are trained scales in 1/64 per
band and pass class c = sig_ctx // 48 (24 classes), and
S, G, N are the sums of trained biases (1/256 bit, int16) of nine categorical features of
the contexts (band and pass class, neighbour class, out-of-band class, activity, reference
sign, neighbour signs, orientation class, band x neighbour class, quality bucket) folded into
one table per context model. ``E`` is a stored exp table (round(2^16 2^(-d/256)), at least 1).
Everything is integer arithmetic (exact integers in float64 for the range coder): the C loops
(:mod:`gancomp._w2c`) and the numpy code below give the same rows bit for bit on any machine. Trained by :mod:`gancomp.train.w2mix`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .errors import FormatError
from .subband import N_NQ, N_OQ

# Feature sizes (see features()): band x pass class, neighbour class, out-of-band class,
# activity, reference sign, neighbour signs (v, h), orientation class, band x pass x
# neighbour class, quality bucket.
N_QB = 5
SIZES = (24, N_NQ, N_OQ, 6, 3, 9, 12, 24 * N_NQ, N_QB)
N_BIAS = sum(SIZES)
A_SHIFT = 6          # a_k in 1/64
LG_N = 8192          # log table entries
EXP_N = 4096         # exp table entries (2^-16 at the end)
N_SIGCTX, N_GCTX, N_SCTX = 24 * N_NQ * N_OQ, 72, 324
N_ACLS = 24          # scale classes: band x pass class (sig_ctx // (N_NQ * N_OQ))


def quality_bucket(step_code: int) -> int:
    """Quality bucket of a step code (q = 202 - code: 0 below 10, 1 below 25, 2 below 40, 3
    below 55, 4 from 55)."""
    return min(N_QB - 1, max(0, (202 - int(step_code) + 5) // 15))


def make_lg() -> np.ndarray:
    """The log table: round(256 log2 n) for n >= 1, and -256 for n = 0 (stored in the file)."""
    n = np.arange(LG_N, dtype=np.float64)
    out = np.round(256.0 * np.log2(np.maximum(n, 1.0))).astype(np.int32)
    out[0] = -256
    return out


def make_exp() -> np.ndarray:
    """The exp table: max(1, round(2^16 2^(-d/256))) (stored in the file)."""
    d = np.arange(EXP_N, dtype=np.float64)
    return np.maximum(1, np.round(65536.0 * np.exp2(-d / 256.0))).astype(np.int32)


def features(sig_ctx: np.ndarray, g_ctx: np.ndarray, s_ctx: np.ndarray, qb: int) -> np.ndarray:
    """(n, 9) feature indices, each offset into the stacked bias table."""
    oq = sig_ctx % N_OQ
    nq = (sig_ctx // N_OQ) % N_NQ
    bp = sig_ctx // (N_OQ * N_NQ)
    f = np.stack([bp, nq, oq, g_ctx % 6, s_ctx % 3, ((s_ctx // 3) % 3) * 3 + (s_ctx // 9) % 3,
                  s_ctx // 27, bp * N_NQ + nq, np.full(np.shape(sig_ctx), qb)], 1)
    return f + np.cumsum((0,) + SIZES[:-1])[None, :]


class Mixer:
    """A trained mixer: ``a`` (N_ACLS, 7) and ``bias`` (N_BIAS, 7) int16, ``lg``, ``exp``."""

    def __init__(self, t: dict[str, np.ndarray]) -> None:
        try:
            self.a = np.asarray(t["a"], dtype=np.int64)
            self.bias = np.asarray(t["bias"], dtype=np.int64)
            self.lg = np.ascontiguousarray(t["lg"], dtype=np.int64)
            self.exp = np.ascontiguousarray(t["exp"], dtype=np.int64)
        except KeyError as exc:
            raise FormatError(f"wavelet2 mixer table {exc} missing") from None
        if self.a.shape != (N_ACLS, 7) or self.bias.shape != (N_BIAS, 7) or self.lg.shape != (LG_N,) \
                or self.exp.shape != (EXP_N,) or self.a.min() < 0 or self.exp.min() < 1:
            raise FormatError("wavelet2 mixer tables have the wrong shape")
        self._bound: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def fold(self, qb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(S per sig context, G per activity, N per sign context) bias sums, int64 C-order."""
        if qb not in self._bound:
            sc = np.arange(N_SIGCTX)
            f = features(sc, np.zeros_like(sc), np.zeros_like(sc), qb)
            S = self.bias[f[:, [0, 1, 2, 7, 8]]].sum(1)
            G = self.bias[np.arange(6) + sum(SIZES[:3])]
            nc = np.arange(N_SCTX)
            fn = features(np.zeros_like(nc), np.zeros_like(nc), nc, qb)
            N = self.bias[fn[:, [4, 5, 6]]].sum(1)
            self._bound[qb] = tuple(np.ascontiguousarray(x, dtype=np.int64) for x in (S, G, N))
        return self._bound[qb]

    def log(self, n: np.ndarray) -> np.ndarray:
        """round(256 log2 n) through the table; n >= LG_N halved first (+256 each time)."""
        n = np.maximum(np.asarray(n, dtype=np.int64), 0)
        if n.size and n.max() < LG_N:
            return self.lg[n]
        extra = np.zeros(n.shape, dtype=np.int64)
        big = n >= LG_N
        while big.any():
            n = np.where(big, n >> 1, n)
            extra += big * 256
            big = n >= LG_N
        return self.lg[n] + extra


class Snapshot:
    """Per-context log2-probability terms of the four binary models at one moment (what a
    strip's rows use), in 1/256 bit: (log P(1), log P(0)) of sig, gt1, sign, and of the rest
    model's "more than 2" (rest symbol > 0)."""

    def __init__(self, mx: Mixer, co) -> None:
        c1 = np.concatenate([co.sig.counts[:, 1], co.gt1.counts[:, 1], co.sign.counts[:, 1],
                             co.rest.totals - co.rest.counts[:, 0]])
        t = np.concatenate([co.sig.totals, co.gt1.totals, co.sign.totals, co.rest.totals])
        lt = mx.log(t)
        one, zero = mx.log(c1) - lt, mx.log(t - c1) - lt
        cut = np.cumsum([co.sig.contexts, co.gt1.contexts, co.sign.contexts])
        self.s1, self.g1, self.n1, self.m1 = np.split(one, cut)
        self.s0, self.g0, self.n0, self.m0 = np.split(zero, cut)

    def terms(self, sc, gc, rc, nc) -> np.ndarray:
        """(n, 8) int64: (log P(1), log P(0)) of sig, gt1, rest "more", sign per symbol."""
        return np.stack([self.s1[sc], self.s0[sc], self.g1[gc], self.g0[gc], self.m1[rc],
                         self.m0[rc], self.n1[nc], self.n0[nc]], 1)


# which of a model's two terms (0: log P(1), 1: log P(0), -1: none) each joint symbol uses
USE = np.array([[1, 0, 0, 0, 0, 0, 0],          # sig
                [-1, 1, 1, 0, 0, 0, 0],         # gt1
                [-1, -1, -1, 1, 1, 0, 0],       # rest: more than 2
                [-1, 1, 0, 1, 0, 1, 0]])        # sign


def model_logp(T: np.ndarray) -> list[np.ndarray]:
    """Each model's (n, 7) share of the joint symbols' log-probabilities from ``terms``."""
    out = []
    for m in range(4):
        t = T[:, 2 * m:2 * m + 2]
        u = USE[m]
        out.append(np.where(u[None, :] < 0, 0, t[:, np.maximum(u, 0)]))
    return out


def logp(T: np.ndarray) -> np.ndarray:
    """(n, 7) log2-probabilities of the joint symbols under the adaptive rows (1/256 bit)."""
    return sum(model_logp(T))


def mix_rows(mx: Mixer, qb: int, T: np.ndarray, sc, gc, nc) -> np.ndarray:
    """The mixed rows (unnormalized integer weights as float64) from the models' ``terms`` T."""
    S, G, N = mx.fold(qb)
    a = mx.a[np.asarray(sc) // (N_NQ * N_OQ)]
    z = S[sc] + G[np.asarray(gc) % 6] + N[nc]
    for L in model_logp(T):
        z += -((a * -L) >> A_SHIFT)
    d = np.minimum(z.max(1, keepdims=True) - z, EXP_N - 1)
    return mx.exp[d].astype(np.float64)        # unnormalized: constriction normalizes


def snapshot_rows(mx: Mixer, qb: int, snap: Snapshot, sc, gc, rc, nc) -> np.ndarray:
    """:func:`mix_rows` of the symbols with contexts (sc, gc, rc, nc) under ``snap``, faster
    when they share one scale class (a pass's symbols do): each model's share of the logits
    is then tabulated per context once (the same integers, as the C path does)."""
    sc, gc, rc, nc = (np.asarray(x, dtype=np.int64) for x in (sc, gc, rc, nc))
    per = N_NQ * N_OQ
    cls = int(sc[0]) // per if sc.size >= 256 else -1
    if cls < 0 or sc.min() < cls * per or sc.max() >= (cls + 1) * per:
        return mix_rows(mx, qb, snap.terms(sc, gc, rc, nc), sc, gc, nc)
    S, G, N = mx.fold(qb)
    a = mx.a[cls]

    def share(t1, t0, m):
        T = np.stack([t1, t0], 1)
        u = USE[m]
        L = np.where(u[None, :] < 0, 0, T[:, np.maximum(u, 0)])
        return -((a[None, :] * -L) >> A_SHIFT)

    lo = cls * per
    PS = (share(snap.s1[lo:lo + per], snap.s0[lo:lo + per], 0) + S[lo:lo + per]).astype(np.int32)
    PG = (share(snap.g1, snap.g0, 1) + G[np.arange(snap.g1.size) % 6]).astype(np.int32)
    PR = share(snap.m1, snap.m0, 2).astype(np.int32)
    PN = (share(snap.n1, snap.n0, 3) + N).astype(np.int32)
    g0, r0 = int(gc[0]) - int(gc[0]) % 6, int(rc[0]) - int(gc[0]) % 6
    if gc.min() >= g0 and gc.max() < g0 + 6 and bool((rc - gc == r0 - g0).all()):
        # one pass: gc and rc both follow the activity: one table per (sig context, activity)
        act = np.arange(6)
        PA = PG[g0 + act] + PR[r0 + act]
        z = (PS[:, None, :] + PA[None, :, :]).reshape(-1, 7)[(sc - lo) * 6 + (gc - g0)]
    else:
        z = PS[sc - lo]
        z += PG[gc]
        z += PR[rc]
    z += PN[nc]
    d = z.max(1, keepdims=True) - z
    np.minimum(d, EXP_N - 1, out=d)
    return mx.exp[d].astype(np.float64)


_CACHE: dict[str, Mixer] = {}


def load(path: Path, sha256: str) -> Mixer:
    """The mixer stored at ``path`` (safetensors), checked against its SHA-256."""
    key = str(path)
    if key not in _CACHE:
        from safetensors.numpy import load as st_load

        try:
            raw = Path(path).read_bytes()
        except OSError:
            raise FormatError(f"wavelet2 mixer table {Path(path).name} missing from this "
                              "install") from None
        if hashlib.sha256(raw).hexdigest() != sha256:
            raise FormatError(f"wavelet2 mixer table {Path(path).name} was modified")
        _CACHE[key] = Mixer(st_load(raw))
    return _CACHE[key]
