"""Issue 10 item 3, offline probe: how many bits could a trained mixer of the v3 context model
save? Records, while the real v3 encoder runs, every joint symbol (0, +-1, +-2, +-3..) with
its contexts and the adaptive model's probability row, then fits on TRAINING photos a small
softmax mixer

    logits_k = a_k * log p_k(adaptive) + sum_f  B_f[value of context feature f, k]

(per-symbol scales a_k, 7 logits per value of each context feature: band class, pass class,
neighbour-sum class, out-of-band class, activity, orientation, neighbour signs, reference
sign, quality bucket; 1,848 parameters, i.e. logistic mixing with context-selected biases)
and reports the ideal code length (bits, -log2 p) of the joint symbols on HELD-BACK photos
under the adaptive rows and under the mixer, with weights rounded to multiples of 1/64 (what an
integer evaluation would use). Escape magnitudes and raw bits are not modelled (unchanged).
Never Kodak. Resumable: per-photo records are cached in --cache.

    python scripts/w2_mix_probe.py --train 24 --held 8 --cache /tmp/w2mix
"""
import argparse, glob, os, sys, time
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from gancomp import subband3                                          # noqa: E402
from gancomp.subband import N_NQ, N_OQ                                 # noqa: E402
from gancomp.train.data import is_held_out                             # noqa: E402

QUALS = (25, 45, 65)
REC: list = []


def _install():
    orig_rows, orig_code = subband3._Tables.rows, subband3._code_symbols

    def rows(self, sig_ctx, g_ctx, r_ctx, s_ctx):
        out = orig_rows(self, sig_ctx, g_ctx, r_ctx, s_ctx)
        REC.append(["rows", np.asarray(sig_ctx), np.asarray(g_ctx), np.asarray(s_ctx), out])
        return out

    def code(co, tb, r_ctx, rows_, qv, n):
        if qv is not None:
            REC[-1].append(qv.copy())
        return orig_code(co, tb, r_ctx, rows_, qv, n)

    subband3._Tables.rows = rows
    subband3._code_symbols = code


def _joint(v):
    m = np.minimum(np.abs(v), 3)
    return np.where(v == 0, 0, 2 * m - 1 + (v < 0))


def features(sig_ctx, g_ctx, s_ctx, qb):
    """Integer context features (each a small category index) of every symbol."""
    oq = sig_ctx % N_OQ
    nq = (sig_ctx // N_OQ) % N_NQ
    bp = sig_ctx // (N_OQ * N_NQ)               # bcls * 4 + pass class
    act = g_ctx % 6
    ref = s_ctx % 3
    vs = (s_ctx // 3) % 3
    hs = (s_ctx // 9) % 3
    so = s_ctx // 27                            # (chroma, dist) * 3 + orientation
    q = np.full(sig_ctx.shape, qb)
    return np.stack([bp, nq, oq, act, ref, vs * 3 + hs, so, bp * N_NQ + nq, q], 1)


SIZES = (24, N_NQ, N_OQ, 6, 3, 9, 12, 24 * N_NQ, len(QUALS))


def collect(path, cache):
    from PIL import Image
    from gancomp.codecs.wavelet2 import Wavelet2Codec

    out = os.path.join(cache, os.path.basename(path) + ".npz")
    if os.path.exists(out):
        return out
    im = np.asarray(Image.open(path).convert("RGB"))
    c = Wavelet2Codec()
    F, L, S, W = [], [], [], []
    for qi, q in enumerate(QUALS):
        REC.clear()
        c.encode(im, q)
        for _, sc, gc, sg, rows, qv in REC:
            n = qv.size
            if sc.size == 1 and n > 1:          # quiet: one row for all; keep a histogram
                sym = _joint(qv)
                h = np.bincount(sym, minlength=7)
                k = np.flatnonzero(h)
                F.append(np.repeat(features(sc, gc, sg, qi), k.size, 0))
                L.append(np.repeat(rows, k.size, 0))
                S.append(k)
                W.append(h[k])
            else:
                F.append(features(sc, gc, sg, qi))
                L.append(rows)
                S.append(_joint(qv))
                W.append(np.ones(n, dtype=np.int64))
    np.savez(out, f=np.concatenate(F).astype(np.int16), p=np.concatenate(L).astype(np.float32),
             s=np.concatenate(S).astype(np.int8), w=np.concatenate(W).astype(np.int32))
    return out


def load(files):
    d = [np.load(f) for f in files]
    return tuple(np.concatenate([x[k] for x in d]) for k in "fpsw")


def logits(params, f, lp):
    a, B = params
    z = lp * a[None, :]
    off = 0
    for j, n in enumerate(SIZES):
        z = z + B[off + f[:, j]]
        off += n
    return z


def bits(params, f, lp, s, w):
    z = logits(params, f, lp)
    z = z - z.max(1, keepdims=True)
    lse = np.log(np.exp(z).sum(1))
    return float(((lse - z[np.arange(s.size), s]) * w).sum() / np.log(2))


def train(f, lp, s, w, iters, lr=0.5, seed=0):
    """Full-batch Adam on the weighted cross-entropy (float64)."""
    a = np.ones(7)
    B = np.zeros((sum(SIZES), 7))
    m = [np.zeros_like(a), np.zeros_like(B)]
    v = [np.zeros_like(a), np.zeros_like(B)]
    W = w.astype(np.float64) / w.sum()
    for it in range(1, iters + 1):
        z = logits((a, B), f, lp)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        g = e / e.sum(1, keepdims=True)
        g[np.arange(s.size), s] -= 1.0
        g *= W[:, None]
        ga = (g * lp).sum(0)
        gB = np.zeros_like(B)
        off = 0
        for j, n in enumerate(SIZES):
            gB[off:off + n] += _segsum(f[:, j], g, n)
            off += n
        for k, (p, gr) in enumerate(((a, ga), (B, gB))):
            m[k] = 0.9 * m[k] + 0.1 * gr
            v[k] = 0.999 * v[k] + 0.001 * gr * gr
            p -= lr * 0.02 * (m[k] / (1 - 0.9 ** it)) / (np.sqrt(v[k] / (1 - 0.999 ** it)) + 1e-9)
    return a, B


def _segsum(idx, g, n):
    return np.stack([np.bincount(idx, weights=g[:, k], minlength=n) for k in range(7)], 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=24)
    ap.add_argument("--held", type=int, default=8)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--cache", default="/tmp/w2mix")
    ap.add_argument("--max-rows", type=int, default=1_500_000,
                    help="train on at most this many busy rows (random, reweighted)")
    a = ap.parse_args()
    os.makedirs(a.cache, exist_ok=True)
    root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "train")
    files = sorted(glob.glob(os.path.join(root, "*", "*")))
    tr = [f for f in files if not is_held_out(f)]
    he = [f for f in files if is_held_out(f)]
    tr = tr[7::max(1, len(tr) // a.train)][:a.train]     # spread over the subfolders
    he = he[:a.held]
    _install()
    t = time.process_time()
    trf = [collect(f, a.cache) for f in tr]
    hef = [collect(f, a.cache) for f in he]
    print(f"collected {len(trf)} train + {len(hef)} held-back photos x {len(QUALS)} qualities "
          f"({time.process_time() - t:.0f} s CPU)", flush=True)
    f, p, s, w = load(trf)
    print(f"train symbols {w.sum()} in {s.size} rows", flush=True)
    single = np.flatnonzero(w == 1)
    if single.size > a.max_rows:     # subsample the one-symbol rows, reweight to stay unbiased
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(single, a.max_rows, replace=False))
        keep = np.concatenate([np.flatnonzero(w != 1), pick])
        w = w.astype(np.float64)
        w[pick] = single.size / a.max_rows
        f, p, s, w = f[keep], p[keep], s[keep], w[keep]
    lp = np.log(np.maximum(p.astype(np.float64), 1e-12))
    t = time.process_time()
    params = train(f.astype(np.int64), lp, s.astype(np.int64), w, a.iters)
    print(f"trained {a.iters} iterations ({time.process_time() - t:.0f} s CPU)", flush=True)
    q = (np.round(params[0] * 64) / 64, np.round(params[1] * 64) / 64)
    for name, fl in (("train", trf), ("held-back", hef)):
        f, p, s, w = load(fl)
        lp = np.log(np.maximum(p.astype(np.float64), 1e-12))
        f, s = f.astype(np.int64), s.astype(np.int64)
        base = float((-np.log2(np.maximum(p[np.arange(s.size), s].astype(np.float64), 1e-12))
                      * w).sum())
        mix, mixq = bits(params, f, lp, s, w), bits(q, f, lp, s, w)
        print(f"{name}: {w.sum()} joint symbols; adaptive rows {base / 8:.0f} bytes, mixer "
              f"{mix / 8:.0f} bytes ({100 * (mix / base - 1):+.2f} %), weights in 1/64 "
              f"{mixq / 8:.0f} bytes ({100 * (mixq / base - 1):+.2f} %)", flush=True)


if __name__ == "__main__":
    main()
