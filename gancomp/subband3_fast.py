"""wavelet2 format v3 with the compiled inner loops (:mod:`gancomp._w2c`): same bytes, same
pixels as :func:`gancomp.subband3.code_group`, fewer small numpy calls.

The numpy code spends most of a pass's time in ~50 small calls per strip (table snapshots,
probability rows, bincount updates, halving). Here each pass's contexts, each strip's
probability rows and count updates, the encoder's joint symbols and RDO choice are one C call
each; the range coding stays with constriction. Used when the extension was built (a C
compiler at install time) and :data:`gancomp.accel.ENABLED` is true (``GANCOMP_W2_NUMPY=1`` in
the environment turns it off); otherwise :mod:`gancomp.subband3` runs its numpy code.
"""

from __future__ import annotations

import numpy as np

from . import accel
from .entropy import _family
from .errors import FormatError
from .subband import _AQ, _NQ, _OQ, ALPHA, MAG_T, N_NQ, N_OQ, PAD, RD, BandInfo, Coders

_w2c = accel._w2c
if _w2c is not None:
    _w2c.set_tables(*(np.ascontiguousarray(t[:n], dtype=np.int64)
                      for t, n in ((_NQ, 200), (_OQ, 200), (_AQ, 401))))

_FIVE = np.array([5], dtype=np.int32)      # a class-3 joint symbol (for the quiet rest row)


def usable(co: Coders) -> bool:
    """Whether the compiled path can code for ``co`` (built, enabled, not recording stats)."""
    return accel.ENABLED and getattr(co, "mix_record", None) is None and \
        all(c.stats is None and c.halve_at == co.sig.halve_at and c.increment == co.sig.increment
            for c in co.all)


def _models(co: Coders):
    arrs = tuple(x for c in (co.sig, co.gt1, co.rest, co.sign) for x in (c.counts, c.totals))
    held = getattr(co, "_w2c_models", None)
    if held is None or any(a is not b for a, b in zip(held[0], arrs)):
        for a in arrs:
            if a.dtype != np.int64 or not a.flags.c_contiguous:
                raise ValueError("wavelet2 counts must be C-contiguous int64")
        held = (arrs, _w2c.Models(*arrs, int(co.sig.halve_at), int(co.sig.increment)))
        co._w2c_models = held
    return held[1]


def _cost_tables(co: Coders) -> list[np.ndarray]:
    """subband._cost_table of the sig, gt1, sign and rest models from one ``log2`` call: the
    same elementwise float64 values (log2 of the same integers, then the same subtraction)."""
    ms = (co.sig, co.gt1, co.sign, co.rest)
    lg = np.log2(np.concatenate([m.totals for m in ms] + [m.counts.ravel() for m in ms])
                 .astype(np.float64))
    out, t, c = [], 0, sum(m.contexts for m in ms)
    for m in ms:
        n, a = m.contexts, m.alphabet
        out.append(lg[t:t + n][:, None] - lg[c:c + n * a].reshape(n, a))
        t, c = t + n, c + n * a
    return out


def _escapes(co: Coders, rsym: np.ndarray) -> np.ndarray:
    """Decoder: magnitudes of class-3 values from their rest symbols (+ raw bits)."""
    nb = np.maximum(rsym - MAG_T, 0)
    big = rsym >= MAG_T
    v = rsym.copy()
    v[big] = (np.int64(1) << nb[big]) + co._get(nb[big]) + MAG_T - 1
    return v + 2


def _put_rest(co: Coders, enc, esc: np.ndarray, model, rows) -> np.ndarray:
    """Encoder: the rest symbols of the class-3 values (``esc`` = magnitude - 2) with a fixed
    ``model`` or per-symbol ``rows``, raw bits to the side stream; returns the rest symbols."""
    from .subband3 import _rest_symbols

    rsym, nb, raw = _rest_symbols(esc)
    if model is not None:
        enc.encode((rsym - 1).astype(np.int32), model)
    else:
        enc.encode((rsym - 1).astype(np.int32), _family(), rows)
    big = nb > 0
    co._put(raw[big], nb[big])
    return rsym


def code_group(co: Coders, infos: list[BandInfo], qs: list[np.ndarray] | None = None,
               rd_a: list[np.ndarray] | None = None, rd: RD | None = None) -> list[np.ndarray]:
    """:func:`gancomp.subband3.code_group` (same arguments, same result and stream)."""
    import constriction

    from .subband3 import STRIP, Canvas, passes_for

    cat = constriction.stream.model.Categorical
    M = _models(co)
    mixer = getattr(co, "mixer", None)      # format v4: (w2mix.Mixer, quality bucket)
    if mixer is not None:
        mx, qb = mixer
        M.set_mixer(*mx.fold(qb), mx.a, mx.lg, mx.exp)
    cv = Canvas(infos)
    h, w = cv.h, cv.w
    chroma, bcls = infos[0].chroma, infos[0].bcls
    wp = w + 2 * PAD
    mag = np.zeros((h + 2 * PAD, wp), dtype=np.int16)
    sgn = np.zeros((h + 2 * PAD, wp), dtype=np.int16)
    out = np.zeros((h, w), dtype=np.int64)
    valid = cv.valid.view(np.uint8)
    decoding = qs is None
    enc, dec = co.sig._enc, co.sig._dec
    q = None
    a_cv = None if rd_a is None else cv.paste(rd_a, np.float64)
    if qs is not None and rd_a is None:
        q = cv.paste(qs)
    nmax = ((h + 1) // 2) * ((w + 1) // 2)
    J, SC, GC, RC, NC, QU = (np.empty(nmax, dtype=np.int64) for _ in range(6))
    BUSY = np.empty(nmax, dtype=np.uint8)
    sym_buf = np.empty(nmax, dtype=np.int32)
    esc_buf = np.empty(nmax, dtype=np.int64)
    for r0, c0, st, dist, p in passes_for(h, w):
        nr, nc = (h - r0 + st - 1) // st, (w - c0 + st - 1) // st
        if nr <= 0 or nc <= 0:
            continue
        n = nr * nc
        nj, nq = _w2c.pass_ctx(mag, sgn, cv.other, valid, cv.orient, cv.ref, a_cv,
                               (h, w, r0, c0, st, dist, p, bcls, chroma),
                               J, SC, GC, RC, NC, BUSY, QU)
        Jv, sc, gc, rc, sn = J[:nj], SC[:nj], GC[:nj], RC[:nj], NC[:nj]
        quiet = QU[:nq]
        if decoding:
            vals = np.zeros(n, dtype=np.int64)
        elif a_cv is not None:
            ca = a_cv[r0::st, c0::st].ravel()
            vals = np.zeros(n, dtype=np.int64)
            chosen = np.empty(nj, dtype=np.int64)
            _w2c.choose(ca, Jv, sc, gc, rc, sn, *_cost_tables(co),
                        (rd.kappa, rd.lam, rd.o1, rd.o2, rd.nz), chosen)
            vals[Jv] = chosen
            keep = BUSY[:nj].view(bool)
            if not keep.all():             # the quiet candidates are coded with the quiet
                Jv, sc, gc, rc, sn = (x[keep] for x in (Jv, sc, gc, rc, sn))
        else:
            vals = q[r0::st, c0::st].ravel()
        zc = (((bcls * 4 + p) * N_NQ) * N_OQ, (bcls * 2 + (p > 0)) * 6,
              (chroma * 2 + (p > 0)) * 6, (((chroma * 2 + dist - 1) * 3 * 3 + 1) * 3 + 1) * 3 + 1)
        za = tuple(np.array([c], dtype=np.int64) for c in zc)
        rows_per = max(1, STRIP // nc)
        cuts = np.arange(0, nr + rows_per, rows_per) * nc
        jcuts, qcuts = np.searchsorted(Jv, cuts), np.searchsorted(quiet, cuts)
        try:
            for t in range(len(cuts) - 1):
                if cuts[t] >= n:
                    break
                q0, q1, j0, j1 = qcuts[t], qcuts[t + 1], jcuts[t], jcuts[t + 1]
                pending = []
                # every probability of the strip from the counts at its start (no adapts yet)
                if q1 > q0:       # quiet: every context at its zero value, one fixed model
                    Q = quiet[q0:q1]
                    row = np.empty(7)
                    M.rows(*za, row)
                    model = cat(row, perfect=False)
                    if decoding:
                        sym = np.asarray(dec.decode(model, Q.size), dtype=np.int32)
                        n3 = int(np.count_nonzero(sym >= 5))
                    else:
                        sym = sym_buf[:Q.size]
                        n3 = _w2c.joint(vals, Q, sym, esc_buf)
                        enc.encode(sym, model)
                        sym = sym.copy()
                    rsym = np.zeros(0, dtype=np.int64)
                    if n3:
                        rrow = np.empty(ALPHA - 1)
                        M.rest_rows(_FIVE, za[2], rrow)
                        rm = cat(rrow, perfect=False)
                        if decoding:
                            rsym = np.asarray(dec.decode(rm, n3), dtype=np.int64) + 1
                        else:
                            rsym = _put_rest(co, enc, esc_buf[:n3].copy(), rm, None)
                    if decoding:
                        _w2c.fill(vals, Q, sym, _escapes(co, rsym) if n3 else rsym)
                    pending.append((sym, *zc, rsym))
                if j1 > j0:       # the others: a probability row per symbol
                    Jt = Jv[j0:j1]
                    ct = (sc[j0:j1], gc[j0:j1], rc[j0:j1], sn[j0:j1])
                    rows = np.empty((Jt.size, 7))
                    M.rows(*ct, rows)
                    if decoding:
                        sym = np.asarray(dec.decode(_family(), rows), dtype=np.int32)
                        n3 = int(np.count_nonzero(sym >= 5))
                    else:
                        sym = sym_buf[:Jt.size]
                        n3 = _w2c.joint(vals, Jt, sym, esc_buf)
                        enc.encode(sym, _family(), rows)
                        sym = sym.copy()
                    rsym = np.zeros(0, dtype=np.int64)
                    if n3:
                        rrows = np.empty((n3, ALPHA - 1))
                        M.rest_rows(sym, ct[2], rrows)
                        if decoding:
                            rsym = np.asarray(dec.decode(_family(), rrows), dtype=np.int64) + 1
                        else:
                            rsym = _put_rest(co, enc, esc_buf[:n3].copy(), None, rrows)
                    if decoding:
                        _w2c.fill(vals, Jt, sym, _escapes(co, rsym) if n3 else rsym)
                    pending.append((sym, *ct, rsym))
                for args in pending:      # then the counts adapt: quiet first, as subband3
                    M.adapt(*args)
        except (ValueError, RuntimeError, AssertionError) as exc:
            if not decoding:
                raise
            raise FormatError(f"entropy decoding failed: {exc}") from None
        _w2c.scatter(vals, out, mag, sgn, (h, w, r0, c0, st))
    return cv.cut(out)
