"""Context-modelled coding of quantized wavelet subbands (the ``wavelet2`` codec's entropy stage).

Each detail band is coded in seven polyphase passes -- first a 4 x 4 grid in four passes
(its later passes see neighbours two apart), then the (odd, odd), (even, odd) and (odd, even)
positions -- so that every pass is one vectorized call whose contexts come only from what the
decoder already has: the passes before it in the same band (two-sided neighbours, not just
the causal half), the parent band one level coarser and the parent's neighbours, the
orientations of the same level coded before, and for chroma the co-located luma band.

Per coefficient: a significance bit, a "magnitude > 1" bit, the rest of the magnitude (direct
symbols, then exponential buckets with raw bits) and a sign bit whose context holds the
already-known neighbour signs. All four share one range coder with block-adaptive integer
counts (:class:`gancomp.entropy.AdaptiveCoder`) that start from counts trained on photos
(:mod:`gancomp.train.w2priors`): no tables in the file, bit-exact anywhere.
"""

from __future__ import annotations

import numpy as np

from .entropy import AdaptiveCoder, _family, _frame, _unframe
from .errors import FormatError

# (row offset, column offset, stride, neighbour distance, context class): a 4 x 4 grid
# first (its later passes see neighbours two apart), then the rest of the 2 x 2 grid.
PASSES = ((0, 0, 4, 2, 0), (2, 2, 4, 2, 1), (0, 2, 4, 2, 1), (2, 0, 4, 2, 1),
          (1, 1, 2, 1, 2), (0, 1, 2, 1, 3), (1, 0, 2, 1, 3))
PAD = 2
MAG_T = 12                 # rest-of-magnitude symbols below MAG_T are direct
N_BUCKET = 24              # then buckets of 1, 2, 4, ... values (raw bits in the bucket)
ALPHA = MAG_T + N_BUCKET
CLIP = 7                   # neighbour magnitudes are clipped here before summing
HALVE_AT = 1 << 22         # halve a context's counts when their total passes this (v1)

N_BCLS = 6                 # band classes: (luma, chroma) x (finest, second, coarser levels)
N_NQ, N_OQ = 8, 6
N_SIG = N_BCLS * 4 * N_NQ * N_OQ
N_GT1 = N_BCLS * 2 * 6
N_REST = 2 * 2 * 6
N_SIGN = 2 * 2 * 3 * 3 * 3 * 3
N_LL = 2

# quantizers of the in-band neighbour sum and of the out-of-band sum (index: the sum)
_NQ = np.repeat(np.arange(N_NQ), [1, 2, 2, 4, 6, 8, 12, 200 - 35])
_OQ = np.repeat(np.arange(N_OQ), [1, 2, 2, 3, 5, 200 - 13])
_AQ = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4] + [5] * 400,
               dtype=np.int64)


MODELS = {"sig": (2, N_SIG), "gt1": (2, N_GT1), "rest": (ALPHA, N_REST),
          "sign": (2, N_SIGN), "ll": (ALPHA, N_LL)}


class _Coder(AdaptiveCoder):
    """An AdaptiveCoder that can start from trained counts and record what it codes."""

    stats: np.ndarray | None = None
    totals: np.ndarray
    halve_at: int = HALVE_AT

    def _probs(self, ctx: np.ndarray) -> np.ndarray:
        # same floats as the base class (integer sums are exact in float64), fewer reductions
        return self.counts[ctx] / self.totals[ctx][:, None].astype(np.float64)

    def _update(self, symbols: np.ndarray, ctx: np.ndarray) -> None:
        np.add.at(self.counts, (ctx, symbols), self.increment)
        self.totals += np.bincount(ctx, minlength=self.contexts) * self.increment
        big = self.totals > self.halve_at
        if big.any():
            self.counts[big] = (self.counts[big] + 1) // 2
            self.totals[big] = self.counts[big].sum(axis=1)

    def encode(self, symbols: np.ndarray, contexts: np.ndarray) -> None:
        if self.stats is not None:
            np.add.at(self.stats, (np.asarray(contexts, dtype=np.int64).ravel(),
                                   np.asarray(symbols, dtype=np.int64).ravel()), 1)
        super().encode(symbols, contexts)


class _BlockCoder(_Coder):
    """Format v3: fixed blocks of ``block`` symbols (no early cuts); every symbol of a block
    uses the counts at the block's start, gathered from one probability table per block, and
    the counts are updated by one ``bincount`` -- a pass of a band is a few vectorized calls.
    Counts above ``halve_at`` are halved until they fit (integer arithmetic, bit-exact)."""

    def _table(self) -> np.ndarray:
        return self.counts / self.totals[:, None].astype(np.float64)

    def _update(self, symbols: np.ndarray, ctx: np.ndarray) -> None:
        a, inc = self.alphabet, self.increment
        if a == 2:
            self.counts[:, 1] += np.bincount(ctx[symbols > 0], minlength=self.contexts) * inc
            self.totals += np.bincount(ctx, minlength=self.contexts) * inc
            self.counts[:, 0] = self.totals - self.counts[:, 1]
        else:
            self.counts += np.bincount(ctx * a + symbols, minlength=self.contexts * a).reshape(
                self.contexts, a) * inc
            self.totals += np.bincount(ctx, minlength=self.contexts) * inc
        self._halve()

    def _halve(self) -> None:
        # rows over the limit are halved until they fit; each row's halvings depend only on
        # that row, so working on the shrinking set of big rows gives the same integers
        t = self.totals
        if t.max() <= self.halve_at:
            return
        idx = np.flatnonzero(t > self.halve_at)
        while idx.size:
            c = (self.counts[idx] + 1) // 2
            self.counts[idx] = c
            s = c.sum(axis=1)
            t[idx] = s
            idx = idx[s > self.halve_at]

    def encode(self, symbols: np.ndarray, contexts: np.ndarray) -> None:
        symbols = np.asarray(symbols, dtype=np.int64).ravel()
        contexts = np.asarray(contexts, dtype=np.int64).ravel()
        if self.stats is not None:
            np.add.at(self.stats, (contexts, symbols), 1)
        if symbols.size and (symbols.min() < 0 or symbols.max() >= self.alphabet):
            raise ValueError("symbol outside the alphabet")
        n, b = symbols.size, self.block
        for a in range(0, n, b):
            s, c = symbols[a:a + b], contexts[a:a + b]
            self._enc.encode(s.astype(np.int32), _family(), self._table()[c])
            self._update(s, c)

    def decode(self, contexts: np.ndarray) -> np.ndarray:
        contexts = np.asarray(contexts, dtype=np.int64).ravel()
        n, b = contexts.size, self.block
        out = np.empty(n, dtype=np.int64)
        try:
            for a in range(0, n, b):
                c = contexts[a:a + b]
                s = np.asarray(self._dec.decode(_family(), self._table()[c]), dtype=np.int64)
                out[a:a + b] = s
                self._update(s, c)
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise FormatError(f"entropy decoding failed: {exc}") from None
        return out


class Coders:
    """The adaptive models of one image, sharing one range coder, plus a raw-bit side stream.

    ``priors`` maps model names to starting counts (trained on photos, see
    :mod:`gancomp.train.w2priors`); ``record`` makes the models count what they code."""

    def __init__(self, data: bytes | None = None, priors: dict[str, np.ndarray] | None = None,
                 record: bool = False, halve_at: int = HALVE_AT, block: int = 0) -> None:
        for name, (alpha, nctx) in MODELS.items():
            c = _BlockCoder(alpha, nctx, block=block) if block else _Coder(alpha, nctx)
            c.halve_at = halve_at
            if priors is not None:
                c.counts = priors[name].astype(np.int64).copy()
            if record:
                c.stats = np.zeros((nctx, alpha), dtype=np.int64)
            c.totals = c.counts.sum(axis=1)
            setattr(self, name, c)
        self.all = (self.sig, self.gt1, self.rest, self.sign, self.ll)
        self.decoding = data is not None
        if data is None:
            enc = self.sig._enc
            for c in self.all:
                c._enc = enc
            self._bits: list[np.ndarray] = []
        else:
            words, raw = _unframe(data)
            import constriction

            dec = constriction.stream.queue.RangeDecoder(words)
            for c in self.all:
                c._dec = dec
            self._raw = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
            self._pos = 0

    def finish(self) -> bytes:
        """The coded stream: range-coder words, then the raw bits."""
        bits = np.concatenate(self._bits) if self._bits else np.zeros(0, np.uint8)
        return _frame(self.sig._enc.get_compressed(), np.packbits(bits).tobytes())

    def check_end(self) -> None:
        """FormatError unless the range coder and the raw bits were consumed exactly."""
        self.sig.check_end()
        if not (self._pos <= self._raw.size < self._pos + 8):
            raise FormatError("wavelet2 raw-bit stream has the wrong length (stream desync)")

    # --- values: direct symbols below MAG_T, exponential buckets with raw bits above ----------

    def code_values(self, coder: AdaptiveCoder, ctx: np.ndarray,
                    values: np.ndarray | None = None) -> np.ndarray:
        """Code (or decode, when ``values`` is None) non-negative integers with ``coder``."""
        if values is not None:
            v = values.astype(np.int64)
            sym = v.copy()
            big = v >= MAG_T
            e = v[big] - MAG_T + 1
            b = np.floor(np.log2(e)).astype(np.int64)
            b += (e >= (np.int64(1) << (b + 1)))          # guard float rounding
            b -= (e < (np.int64(1) << b))
            if b.size and b.max() >= N_BUCKET:
                raise ValueError("coefficient too large for wavelet2")
            sym[big] = MAG_T + b
            coder.encode(sym, ctx)
            self._put(e - (np.int64(1) << b), b)
            return v
        sym = coder.decode(ctx)
        big = sym >= MAG_T
        b = sym[big] - MAG_T
        e = (np.int64(1) << b) + self._get(b)
        out = sym.copy()
        out[big] = e + MAG_T - 1
        return out

    def _put(self, vals: np.ndarray, nbits: np.ndarray) -> None:
        if not vals.size:
            return
        m = int(nbits.max())
        if m == 0:
            return
        shifts = np.arange(m - 1, -1, -1)
        bits = (vals[:, None] >> shifts[None, :]) & 1
        keep = shifts[None, :] < nbits[:, None]
        self._bits.append(bits[keep].astype(np.uint8))

    def _get(self, nbits: np.ndarray) -> np.ndarray:
        total = int(nbits.sum())
        if self._pos + total > self._raw.size:
            raise FormatError("wavelet2 raw-bit stream too short (stream desync)")
        out = np.zeros(nbits.size, dtype=np.int64)
        if total:
            seg = self._raw[self._pos:self._pos + total].astype(np.int64)
            owner = np.repeat(np.arange(nbits.size), nbits)
            starts = np.cumsum(nbits) - nbits
            pos_in = np.arange(total) - starts[owner]
            weight = nbits[owner] - 1 - pos_in
            np.add.at(out, owner, seg << weight)
        self._pos += total
        return out


def _resample(a: np.ndarray | None, shape: tuple[int, int], factor: int) -> np.ndarray:
    """``a[i // factor, j // factor]`` on ``shape`` (indices clipped); zeros without ``a``."""
    if a is None or a.size == 0:
        return np.zeros(shape, dtype=np.int64)
    h, w = shape
    if factor > 1:   # repeat rows and columns (the same values as the clipped gather)
        a = a[:(h + factor - 1) // factor, :(w + factor - 1) // factor]
        a = np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)
    if a.shape[0] < h or a.shape[1] < w:
        a = np.pad(a, ((0, max(0, h - a.shape[0])), (0, max(0, w - a.shape[1]))), mode="edge")
    return a[:h, :w]


class BandInfo:
    """What the contexts of one band may look at (all already known to the decoder)."""

    def __init__(self, chroma: int, level_cls: int, orient: int, shape: tuple[int, int],
                 parent: np.ndarray | None, siblings: list[np.ndarray],
                 luma: np.ndarray | None) -> None:
        self.chroma = chroma
        self.bcls = chroma * 3 + level_cls
        self.orient = orient
        self.shape = shape
        # out-of-band magnitudes: 2 x parent + co-located siblings (+ luma for chroma), in
        # int16 (at most 49), clipped magnitudes resampled (the same values as resampling first)
        if parent is not None and parent.size:
            pm0 = np.minimum(np.abs(parent), CLIP).astype(np.int16)
            par = _resample(pm0, shape, 2)
            pm = np.pad(pm0, 1)      # the parent's own neighbours, half weight
            pn = pm[:-2, 1:-1] + pm[2:, 1:-1] + pm[1:-1, :-2] + pm[1:-1, 2:]
            other = 2 * par + _resample(pn, shape, 2) // 2
        else:
            other = np.zeros(shape, dtype=np.int16)
        for s in siblings:
            other += np.minimum(np.abs(_resample(s, shape, 1)), CLIP).astype(np.int16)
        if luma is not None:
            other += np.minimum(np.abs(luma), CLIP).astype(np.int16)
        self.other = other
        # sign context beyond the band: luma's sign for chroma, the parent's for luma
        if luma is not None:
            self.ref_sign = np.sign(luma).astype(np.int8) + 1
        elif parent is not None and parent.size:
            self.ref_sign = _resample(np.sign(parent).astype(np.int8) + 1, shape, 2)
        else:
            self.ref_sign = np.ones(shape, dtype=np.int8)      # int8 (0..2): less memory


def _shift(p: np.ndarray, r0: int, c0: int, st: int, dr: int, dc: int, nr: int,
           nc: int) -> np.ndarray:
    r, c = PAD + r0 + dr, PAD + c0 + dc
    return p[r:r + st * (nr - 1) + 1:st, c:c + st * (nc - 1) + 1:st]


def _cost_table(coder: AdaptiveCoder) -> np.ndarray:
    """Bits of every (context, symbol) under ``coder``'s current counts."""
    return np.log2(coder.totals.astype(np.float64))[:, None] - np.log2(coder.counts)


class RD:
    """Encoder-side rate-distortion optimized quantization of one band: each coefficient
    takes the value among {round(|c|/step), one less, 0} that minimizes
    ``kappa * (|c|/step - recon)^2 + lam * bits`` with bits from the live context model
    (the counts at the start of the pass; effects on later contexts are ignored)."""

    def __init__(self, a: np.ndarray, kappa: float, lam: float, o1: float, o2: float,
                 nz: float = 0.0) -> None:
        self.a, self.kappa, self.lam, self.o1, self.o2, self.nz = a, kappa, lam, o1, o2, nz

    def choose(self, co: Coders, a: np.ndarray, sig_ctx: np.ndarray, g_ctx: np.ndarray,
               r_ctx: np.ndarray, s_ctx: np.ndarray, neg: np.ndarray) -> np.ndarray:
        """Signed quantized values for the magnitudes ``a`` (in steps) given the contexts."""
        out = np.zeros(a.size, dtype=np.int64)
        idx = np.flatnonzero(a >= 0.5)       # below half a step zero is always best
        if not idx.size:
            return out
        a, neg = a[idx], neg[idx]
        sig_ctx, g_ctx, r_ctx = sig_ctx[idx], g_ctx[idx], r_ctx[idx]
        m0 = np.floor(a + 0.5).astype(np.int64)
        sig_t = _cost_table(co.sig)
        gt_t = _cost_table(co.gt1)[g_ctx]
        z_bits = sig_t[sig_ctx, 0]
        sign_t = _cost_table(co.sign)
        nz_bits = self.nz + sig_t[sig_ctx, 1] + sign_t[s_ctx[idx], neg.astype(np.int64)]
        rest_t = _cost_table(co.rest)
        best = self.kappa * a * a + self.lam * z_bits
        res = np.zeros_like(m0)
        for m in (m0, m0 - 1):
            mm = np.maximum(m, 1)
            rec = np.where(mm == 1, 1.0 + self.o1, mm + self.o2)
            v = np.maximum(mm - 2, 0)
            big = v >= MAG_T
            e = np.maximum(v - MAG_T + 1, 1)
            bk = np.minimum(np.floor(np.log2(e)).astype(np.int64), N_BUCKET - 1)
            sym = np.where(big, MAG_T + bk, np.minimum(v, MAG_T - 1))
            rest = rest_t[r_ctx, sym] + np.where(big, bk, 0)
            bits = nz_bits + np.where(mm == 1, gt_t[:, 0], gt_t[:, 1] + rest)
            j = self.kappa * (a - rec) ** 2 + self.lam * bits
            take = (m >= 1) & (j < best)
            best = np.where(take, j, best)
            res = np.where(take, mm, res)
        out[idx] = np.where(neg, -res, res)
        return out


def code_band(co: Coders, info: BandInfo, q: np.ndarray | None = None,
              rd: RD | None = None) -> np.ndarray:
    """Code the quantized band ``q`` (or decode it when ``q`` is None; with ``rd``, choose
    the values by rate-distortion optimization against the live model); returns the band."""
    h, w = info.shape
    mag = np.zeros((h + 2 * PAD, w + 2 * PAD), dtype=np.int64)  # known clipped magnitudes
    sgn = np.zeros((h + 2 * PAD, w + 2 * PAD), dtype=np.int64)  # known signs (-1, 0, 1)
    out = np.zeros((h, w), dtype=np.int64)
    for r0, c0, st, dist, p in PASSES:
        nr, nc = (h - r0 + st - 1) // st, (w - c0 + st - 1) // st
        if nr <= 0 or nc <= 0:
            continue

        def nbr(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
            return _shift(a, r0, c0, st, dr * dist, dc * dist, nr, nc)

        direct = nbr(mag, -1, 0) + nbr(mag, 1, 0) + nbr(mag, 0, -1) + nbr(mag, 0, 1)
        diag = nbr(mag, -1, -1) + nbr(mag, -1, 1) + nbr(mag, 1, -1) + nbr(mag, 1, 1)
        nb = (2 * direct + diag).ravel()
        other = info.other[r0::st, c0::st].ravel()
        sig_ctx = ((info.bcls * 4 + p) * N_NQ + _NQ[np.minimum(nb, 199)]) * N_OQ + \
            _OQ[np.minimum(other, 199)]
        act = _AQ[np.minimum(nb + other, 400)]
        hs_all = np.sign(nbr(sgn, 0, -1) + nbr(sgn, 0, 1)).ravel() + 1
        vs_all = np.sign(nbr(sgn, -1, 0) + nbr(sgn, 1, 0)).ravel() + 1
        ref_all = info.ref_sign[r0::st, c0::st].ravel()
        s_base = (info.chroma * 2 + dist - 1) * 3 + info.orient
        if q is None:
            sig = co.sig.decode(sig_ctx)
        else:
            if rd is not None:
                ca = rd.a[r0::st, c0::st].ravel()
                q[r0::st, c0::st] = rd.choose(
                    co, np.abs(ca), sig_ctx, (info.bcls * 2 + (p > 0)) * 6 + act,
                    (info.chroma * 2 + (p > 0)) * 6 + act,
                    ((s_base * 3 + hs_all) * 3 + vs_all) * 3 + ref_all, ca < 0).reshape(nr, nc)
            qs = q[r0::st, c0::st].ravel()
            m_true = np.abs(qs)
            sig = (m_true > 0).astype(np.int64)
            co.sig.encode(sig, sig_ctx)
        nz = np.flatnonzero(sig)
        g_ctx = (info.bcls * 2 + (p > 0)) * 6 + act[nz]
        if q is None:
            gt1 = co.gt1.decode(g_ctx)
        else:
            gt1 = (m_true[nz] > 1).astype(np.int64)
            co.gt1.encode(gt1, g_ctx)
        big = nz[gt1 > 0]
        r_ctx = (info.chroma * 2 + (p > 0)) * 6 + act[big]
        rest = co.code_values(co.rest, r_ctx, None if q is None else m_true[big] - 2)
        m = sig.copy()
        m[big] = rest + 2
        # signs: context = known horizontal / vertical neighbour signs and the reference sign
        s_ctx = ((s_base * 3 + hs_all[nz]) * 3 + vs_all[nz]) * 3 + ref_all[nz]
        if q is None:
            neg = co.sign.decode(s_ctx)
        else:
            neg = (qs[nz] < 0).astype(np.int64)
            co.sign.encode(neg, s_ctx)
        vals = m.copy()
        vals[nz] = np.where(neg > 0, -m[nz], m[nz])
        vals = vals.reshape(nr, nc)
        out[r0::st, c0::st] = vals
        mag[PAD + r0:PAD + h:st, PAD + c0:PAD + w:st] = np.minimum(np.abs(vals), CLIP)
        sgn[PAD + r0:PAD + h:st, PAD + c0:PAD + w:st] = np.sign(vals)
    return out


def code_ll(co: Coders, chroma: int, shape: tuple[int, int],
            q: np.ndarray | None = None) -> np.ndarray:
    """Code (or decode) the low-pass band by DPCM: left neighbour on the first row, the
    one above elsewhere; residuals as zigzag values (fully vectorized both ways)."""
    h, w = shape
    if q is not None:
        pred = np.zeros_like(q)
        pred[0, 1:] = q[0, :-1]
        pred[1:] = q[:-1]
        r = (q - pred).ravel()
        z = np.where(r >= 0, 2 * r, -2 * r - 1)
        co.code_values(co.ll, np.full(r.size, chroma), z)
        return q
    z = co.code_values(co.ll, np.full(h * w, chroma))
    r = np.where(z % 2 == 0, z // 2, -(z + 1) // 2).reshape(h, w)
    r[0] = np.cumsum(r[0])
    return np.cumsum(r, axis=0)
