"""wavelet2 format v3: the bands of a level coded a whole group and pass at a time.

Same polyphase passes, context quantizers and binary models as :mod:`gancomp.subband` (v1/v2),
arranged for few, large vectorized calls:

- a level's three luma bands (and its six chroma bands) lie side by side on one canvas
  (:class:`Canvas`), so each of the seven passes covers the whole group; contexts: in-band
  neighbours from earlier passes, the parent band and its neighbours, co-located luma for
  chroma (no sibling orientations: they are coded in the same pass);
- a coefficient's significance, "> 1", "= 2" and sign are one symbol of a 7-letter alphabet
  (0, +-1, +-2, +-3 or more) whose probabilities are the products of the four binary models'
  count ratios (the chain rule: the code length of coding them one after another), built by
  elementwise float64 operations on integer counts (bit-exact anywhere); magnitudes past 2
  follow with the rest model conditioned on > 0, plus raw bits;
- a pass is cut into strips of whole canvas rows (about ``STRIP`` coefficients); in each strip
  the quiet coefficients (every context input zero) go first with one fixed model, then the
  others with per-symbol rows; the counts adapt after each strip by ``bincount``.

84 passes and ~360 range-coder calls for a 768 x 512 colour image instead of v2's 378 passes
and ~2100 calls.
"""

from __future__ import annotations

import numpy as np

from .entropy import _family
from .errors import FormatError
from .subband import (_AQ, _NQ, _OQ, CLIP, MAG_T, N_BUCKET, N_NQ, N_OQ, PAD, PASSES, RD,
                      BandInfo, Coders, _shift)


def _ratio(coder, col: int) -> np.ndarray:
    """counts[:, col] / totals per context (float64 of exact integers: bit-exact)."""
    return coder.counts[:, col] / coder.totals.astype(np.float64)


def _rest_tables(co: Coders) -> tuple[np.ndarray, np.ndarray]:
    """(P(rest > 0) per context, P(rest symbol | rest > 0) rows without symbol 0)."""
    c = co.rest.counts
    above = (co.rest.totals - c[:, 0]).astype(np.float64)
    return above / co.rest.totals.astype(np.float64), c[:, 1:] / above[:, None]


def _rest_symbols(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rest-model symbol, raw bit count, raw value) of values ``v`` >= 0 (as subband)."""
    sym = v.copy()
    big = v >= MAG_T
    e = v[big] - MAG_T + 1
    b = np.floor(np.log2(e)).astype(np.int64)
    b += (e >= (np.int64(1) << (b + 1)))
    b -= (e < (np.int64(1) << b))
    if b.size and b.max() >= N_BUCKET:
        raise ValueError("coefficient too large for wavelet2")
    sym[big] = MAG_T + b
    nb = np.zeros_like(v)
    nb[big] = b
    raw = np.zeros_like(v)
    raw[big] = e - (np.int64(1) << b)
    return sym, nb, raw


class _Tables:
    """The probabilities every symbol of a pass uses: the counts at the pass's start."""

    def __init__(self, co: Coders) -> None:
        self.sig, self.gt1, self.sign = (_ratio(c, 1) for c in (co.sig, co.gt1, co.sign))
        self.more, self.rest_rows = _rest_tables(co)
        self.mixer = getattr(co, "mixer", None)      # format v4: (w2mix.Mixer, quality bucket)
        self.snap = None
        if self.mixer is not None:
            from .w2mix import Snapshot

            self.snap = Snapshot(self.mixer[0], co)

    def rows(self, sig_ctx, g_ctx, r_ctx, s_ctx) -> np.ndarray:
        """Per-symbol probability rows of the 7 joint symbols (chain rule of four models;
        format v4: mixed by the trained integer mixer, :mod:`gancomp.w2mix`)."""
        if self.snap is not None:
            from .w2mix import snapshot_rows

            return snapshot_rows(self.mixer[0], self.mixer[1], self.snap, sig_ctx, g_ctx,
                                 r_ctx, s_ctx)
        p1 = self.sig[sig_ctx]
        g1 = self.gt1[g_ctx]
        r1 = self.more[r_ctx]
        sn = self.sign[s_ctx]
        probs = np.empty((p1.size, 7))
        np.subtract(1.0, p1, out=probs[:, 0])
        m1 = p1 * (1.0 - g1)
        m2 = p1 * g1
        m3 = m2 * r1
        m2 -= m3
        sp = 1.0 - sn
        np.multiply(m1, sp, out=probs[:, 1])
        np.multiply(m1, sn, out=probs[:, 2])
        np.multiply(m2, sp, out=probs[:, 3])
        np.multiply(m2, sn, out=probs[:, 4])
        np.multiply(m3, sp, out=probs[:, 5])
        np.multiply(m3, sn, out=probs[:, 6])
        return probs


def _code_symbols(co: Coders, tb: _Tables, r_ctx, rows, qv: np.ndarray | None, n: int):
    """Code (or decode when ``qv`` is None) ``n`` joint symbols with probability ``rows``
    (one row shared by all when ``rows`` has one row: the quiet coefficients), then the
    magnitudes past 2. Returns, for the non-zero values only: their indices, class (1, 2,
    3 = more), magnitude, sign (True: negative) and the rest-model symbols of class 3."""
    import constriction

    fixed = rows.shape[0] == 1
    if fixed:
        model = constriction.stream.model.Categorical(rows[0], perfect=False)
    if qv is None:
        try:
            sym = co.sig._dec.decode(model, n) if fixed else co.sig._dec.decode(_family(), rows)
            sym = np.asarray(sym)
            nzi = np.flatnonzero(sym)
            s = sym[nzi].astype(np.int64)
            cls = (s + 1) >> 1                       # 1, 2, 3 (= 3 or more)
            neg = (s & 1) == 0
            mag = cls.copy()
            esc = np.flatnonzero(cls == 3)
            rsym = np.zeros(0, dtype=np.int64)
            if esc.size:
                if fixed:
                    rm = constriction.stream.model.Categorical(tb.rest_rows[r_ctx[0]],
                                                               perfect=False)
                    rsym = co.sig._dec.decode(rm, esc.size)
                else:
                    rsym = co.sig._dec.decode(_family(), tb.rest_rows[r_ctx[nzi[esc]]])
                rsym = np.asarray(rsym, dtype=np.int64) + 1
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise FormatError(f"entropy decoding failed: {exc}") from None
        if esc.size:
            nb = np.maximum(rsym - MAG_T, 0)
            big = rsym >= MAG_T
            v = rsym.copy()
            v[big] = (np.int64(1) << nb[big]) + co._get(nb[big]) + MAG_T - 1
            mag[esc] = v + 2
        return nzi, cls, mag, neg, rsym
    nzi = np.flatnonzero(qv)
    v = qv[nzi]
    mag = np.abs(v)
    neg = v < 0
    cls = np.minimum(mag, 3)
    sym = np.zeros(n, dtype=np.int32)
    sym[nzi] = 2 * cls - 1 + neg
    if fixed:
        co.sig._enc.encode(sym, model)
    else:
        co.sig._enc.encode(sym, _family(), rows)
    esc = np.flatnonzero(cls == 3)
    rsym = np.zeros(0, dtype=np.int64)
    if esc.size:
        rsym, nb, raw = _rest_symbols(mag[esc] - 2)
        if fixed:
            rm = constriction.stream.model.Categorical(tb.rest_rows[r_ctx[0]], perfect=False)
            co.sig._enc.encode((rsym - 1).astype(np.int32), rm)
        else:
            co.sig._enc.encode((rsym - 1).astype(np.int32), _family(),
                               tb.rest_rows[r_ctx[nzi[esc]]])
        big = nb > 0
        co._put(raw[big], nb[big])
    return nzi, cls, mag, neg, rsym


def _count(coder, key: np.ndarray) -> None:
    """Add one observation per entry of ``key`` = context * alphabet + symbol."""
    a = coder.alphabet
    b = np.bincount(key, minlength=coder.contexts * a).reshape(coder.contexts, a)
    if coder.stats is not None:        # recording for the trained starting counts
        coder.stats += b
    coder.counts += b * coder.increment
    coder.totals += b.sum(axis=1) * coder.increment
    coder._halve()


def _add(coder, ctx: int, ones: int, n: int) -> None:
    """Count ``n`` binary symbols, ``ones`` of them 1, in context ``ctx``."""
    if n:
        inc = coder.increment
        c0 = int(coder.counts[ctx, 0]) + (n - ones) * inc
        c1 = int(coder.counts[ctx, 1]) + ones * inc
        while c0 + c1 > coder.halve_at:     # only this row changed: halve it alone (as _halve)
            c0, c1 = (c0 + 1) // 2, (c1 + 1) // 2
        coder.counts[ctx, 0], coder.counts[ctx, 1] = c0, c1
        coder.totals[ctx] = c0 + c1
        if coder.stats is not None:
            coder.stats[ctx] += (n - ones, ones)


def _adapt(co: Coders, n: int, nzi, cls, neg, ctx, rsym: np.ndarray) -> None:
    """Update the four models with ``n`` coded coefficients as a v2 coder would have seen
    them (significance, > 1, rest of magnitude, sign); ``ctx``: their four context arrays, or
    four ints shared by all (quiet coefficients); ``nzi``, ``cls``, ``neg``: the non-zero
    ones; ``rsym``: the rest symbols of class 3 in order."""
    sig_ctx, g_ctx, r_ctx, s_ctx = ctx
    two = cls >= 2
    rs = np.zeros(int(two.sum()), dtype=np.int64)
    rs[cls[two] == 3] = rsym
    if isinstance(sig_ctx, int):
        _add(co.sig, sig_ctx, nzi.size, n)
        _add(co.gt1, g_ctx, rs.size, nzi.size)
        _add(co.sign, s_ctx, int(neg.sum()), nzi.size)
        if rs.size:
            _count(co.rest, r_ctx * co.rest.alphabet + rs)
        return
    sig = co.sig
    ones = np.bincount(sig_ctx[nzi], minlength=sig.contexts)
    alls = np.bincount(sig_ctx, minlength=sig.contexts)
    if sig.stats is not None:
        sig.stats[:, 0] += alls - ones
        sig.stats[:, 1] += ones
    sig.counts[:, 1] += ones * sig.increment
    sig.counts[:, 0] += (alls - ones) * sig.increment
    sig.totals += alls * sig.increment
    sig._halve()
    _count(co.gt1, g_ctx[nzi] * 2 + two)
    _count(co.sign, s_ctx[nzi] * 2 + neg)
    if rs.size:
        _count(co.rest, r_ctx[nzi[two]] * co.rest.alphabet + rs)


class Canvas:
    """The bands of one group (same level, luma or chroma) side by side on one zero
    canvas, each starting at a column that is a multiple of 4 and at least ``PAD`` zero
    columns from the previous one, so one pass covers them all and no context reaches across
    bands. ``other``, ``ref`` and ``orient`` hold each band's context inputs in place."""

    def __init__(self, infos: list[BandInfo]) -> None:
        self.infos = infos
        self.cols, x = [], 0
        for inf in infos:
            self.cols.append(x)
            x = (x + inf.shape[1] + PAD + 3) // 4 * 4
        self.h = max(inf.shape[0] for inf in infos)
        self.w = x
        self.other = np.zeros((self.h, self.w), dtype=np.int16)
        self.ref = np.ones((self.h, self.w), dtype=np.int8)       # 0..2
        self.orient = np.zeros((self.h, self.w), dtype=np.int8)    # 0..2
        self.valid = np.zeros((self.h, self.w), dtype=bool)
        for inf, c in zip(infos, self.cols):
            bh, bw = inf.shape
            self.other[:bh, c:c + bw] = inf.other
            self.ref[:bh, c:c + bw] = inf.ref_sign
            self.orient[:bh, c:c + bw] = inf.orient
            self.valid[:bh, c:c + bw] = True

    def paste(self, bands: list[np.ndarray], dtype=np.int64) -> np.ndarray:
        out = np.zeros((self.h, self.w), dtype=dtype)
        for b, c in zip(bands, self.cols):
            out[:b.shape[0], c:c + b.shape[1]] = b
        return out

    def cut(self, canvas: np.ndarray) -> list[np.ndarray]:
        return [canvas[:inf.shape[0], c:c + inf.shape[1]] for inf, c in zip(self.infos, self.cols)]


def code_group(co: Coders, infos: list[BandInfo], qs: list[np.ndarray] | None = None,
               rd_a: list[np.ndarray] | None = None, rd: RD | None = None) -> list[np.ndarray]:
    """Code the quantized bands ``qs`` of one group (same chroma flag and level class; or
    decode them when ``qs`` is None; with ``rd_a`` -- the coefficients in steps -- and ``rd``,
    choose the values by rate-distortion optimization against the live model); returns the
    bands.

    Per pass over the group's canvas, in strips of about STRIP coefficients: the quiet
    coefficients (no known non-zero neighbour, parent or luma: every context at its zero
    value) with one fixed model, then the others with per-symbol rows; the models adapt
    after each strip. With the compiled extension (:mod:`gancomp.subband3_fast`) the same
    bytes and bands come from its C loops."""
    from . import subband3_fast

    if subband3_fast.usable(co):
        return subband3_fast.code_group(co, infos, qs, rd_a, rd)
    cv = Canvas(infos)
    h, w = cv.h, cv.w
    chroma, bcls = infos[0].chroma, infos[0].bcls
    wp = w + 2 * PAD
    mag = np.zeros((h + 2 * PAD, wp), dtype=np.int16)  # known clipped magnitudes
    sgn = np.zeros((h + 2 * PAD, wp), dtype=np.int16)  # known signs (-1, 0, 1)
    mflat, sflat = mag.ravel(), sgn.ravel()
    out = np.zeros((h, w), dtype=np.int64)
    oflat = out.ravel()
    q = None
    a_cv = None if rd_a is None else cv.paste(rd_a, np.float64)
    if qs is not None and rd_a is None:
        q = cv.paste(qs)
    for r0, c0, st, dist, p in passes_for(h, w):
        nr, nc = (h - r0 + st - 1) // st, (w - c0 + st - 1) // st
        if nr <= 0 or nc <= 0:
            continue
        n = nr * nc

        def nbr(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
            return _shift(a, r0, c0, st, dr * dist, dc * dist, nr, nc)

        nb = (2 * (nbr(mag, -1, 0) + nbr(mag, 1, 0) + nbr(mag, 0, -1) + nbr(mag, 0, 1)) +
              nbr(mag, -1, -1) + nbr(mag, -1, 1) + nbr(mag, 1, -1) + nbr(mag, 1, 1)).ravel()
        other = cv.other[r0::st, c0::st].ravel()
        valid = cv.valid[r0::st, c0::st].ravel()
        busy = ((nb | other) != 0) & valid
        qv = None
        if a_cv is not None:
            ca = a_cv[r0::st, c0::st].ravel()
            cand = busy | (np.abs(ca) >= 0.5)
            qv = np.zeros(n, dtype=np.int64)
        else:
            if q is not None:
                qv = q[r0::st, c0::st].ravel()
            cand = busy
        J = np.flatnonzero(cand)
        # contexts of the candidates (decoder: the busy ones), by gathers
        nbJ, oJ = nb[J], other[J]
        sig_ctx = ((bcls * 4 + p) * N_NQ + _NQ[np.minimum(nbJ, 199)]) * N_OQ + \
            _OQ[np.minimum(oJ, 199)]
        act = _AQ[np.minimum(nbJ + oJ, 400)]
        g_ctx = (bcls * 2 + (p > 0)) * 6 + act
        r_ctx = (chroma * 2 + (p > 0)) * 6 + act
        pr, pc = np.divmod(J, nc)
        pos = (PAD + r0 + st * pr) * wp + (PAD + c0 + st * pc)
        d = dist
        hs = np.sign(sflat[pos - d] + sflat[pos + d]) + 1
        vs = np.sign(sflat[pos - d * wp] + sflat[pos + d * wp]) + 1
        s1 = (chroma * 2 + dist - 1) * 3
        cpos = (r0 + st * pr) * w + (c0 + st * pc)      # positions on the canvas
        s_ctx = (((s1 + cv.orient.ravel()[cpos].astype(np.int64)) * 3 + hs) * 3 + vs) * 3 + \
            cv.ref.ravel()[cpos]
        if a_cv is not None:
            qv[J] = rd.choose(co, np.abs(ca[J]), sig_ctx, g_ctx, r_ctx, s_ctx, ca[J] < 0)
        if J.size != int(busy.sum()):          # encoder with RDO: keep the busy ones
            keep = busy[J]
            J, sig_ctx, g_ctx, r_ctx, s_ctx = (x[keep] for x in (J, sig_ctx, g_ctx, r_ctx, s_ctx))
        zero_ctx = (((bcls * 4 + p) * N_NQ) * N_OQ, (bcls * 2 + (p > 0)) * 6,
                    (chroma * 2 + (p > 0)) * 6, ((s1 * 3 + 1) * 3 + 1) * 3 + 1)
        z = np.array(zero_ctx, dtype=np.int64)[:, None]
        quiet = np.flatnonzero(valid & ~busy)
        rows_per = max(1, STRIP // nc)
        cuts = np.arange(0, nr + rows_per, rows_per) * nc
        jcuts, qcuts = np.searchsorted(J, cuts), np.searchsorted(quiet, cuts)
        nz_idx, nz_val = [], []
        rec = getattr(co, "mix_record", None)    # training data of the v4 mixer (w2mix)
        for t in range(len(cuts) - 1):
            if cuts[t] >= n:
                break
            tb = _Tables(co)
            Q = quiet[qcuts[t]:qcuts[t + 1]]
            if rec is not None and qv is not None:
                rec(co, z[:, 0], qv[Q], J[jcuts[t]:jcuts[t + 1]].size and
                    tuple(c[jcuts[t]:jcuts[t + 1]] for c in (sig_ctx, g_ctx, r_ctx, s_ctx)),
                    qv[J[jcuts[t]:jcuts[t + 1]]])
            if Q.size:     # quiet: every context at its zero value, one fixed model
                nzi, cls, m_, neg, rsym = _code_symbols(co, tb, z[2], tb.rows(*z),
                                                        None if qv is None else qv[Q], Q.size)
                _adapt(co, Q.size, nzi, cls, neg, zero_ctx, rsym)
                nz_idx.append(Q[nzi])
                nz_val.append(np.where(neg, -m_, m_))
            j0, j1 = jcuts[t], jcuts[t + 1]
            if j1 > j0:
                Jt = J[j0:j1]
                ct = (sig_ctx[j0:j1], g_ctx[j0:j1], r_ctx[j0:j1], s_ctx[j0:j1])
                nzi, cls, m_, neg, rsym = _code_symbols(co, tb, ct[2], tb.rows(*ct),
                                                        None if qv is None else qv[Jt], Jt.size)
                _adapt(co, Jt.size, nzi, cls, neg, ct, rsym)
                nz_idx.append(Jt[nzi])
                nz_val.append(np.where(neg, -m_, m_))
        if nz_idx:    # the non-zero values into the band and the context arrays
            f = np.concatenate(nz_idx)
            v = np.concatenate(nz_val)
            fr, fc = np.divmod(f, nc)
            rr, cc = r0 + st * fr, c0 + st * fc
            oflat[rr * w + cc] = v
            pp = (rr + PAD) * wp + cc + PAD
            mflat[pp] = np.minimum(np.abs(v), CLIP)
            sflat[pp] = np.sign(v)
    return cv.cut(out)


PASSES4 = ((0, 0, 2, 1, 0), (1, 1, 2, 1, 2), (0, 1, 2, 1, 3), (1, 0, 2, 1, 3))
STRIP = 16384     # a pass is coded in strips of about this many coefficients (part of v3)
SMALL4 = 0        # canvases with fewer coefficients than this: the 2 x 2 grid only (an
                  # experiment, measured per band before the canvases: +0.2 % bytes, -7 % decode
                  # time; 0 in v3, part of the format)


def passes_for(h: int, w: int):
    """The polyphase passes of an h x w canvas (fewer for small ones: less per-call cost)."""
    return PASSES4 if h * w < SMALL4 else PASSES


__all__ = ["code_group", "Canvas"]
