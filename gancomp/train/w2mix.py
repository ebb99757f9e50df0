"""Train wavelet2 format v4's integer mixer (:mod:`gancomp.w2mix`) on training photos.

1. ``collect``: the v3/v4 encoder (numpy path) runs on training photos (never Kodak, never the
   held-back ones) at several qualities and records every joint symbol with its contexts and
   the adaptive rows' integer log-probabilities L (the mixer does not change which values the
   encoder chooses, only their probabilities, so these are exactly v4's inputs);
2. ``train``: full-batch Adam on the cross-entropy of the softmax mixer in float64
   (z_k = a[c][k] L_k + sum of the features' biases, in 1/256 bit), quiet rows as histograms,
   busy rows subsampled and reweighted;
3. ``quantize``: a_k to 1/64, biases to int16; ``save``: safetensors + JSON model card.

    python -m gancomp.train.w2mix --data /work/shared/data/train --out gancomp/data/wavelet2_mixer_v4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .. import w2mix
from ..w2mix import A_SHIFT, N_ACLS, N_BIAS, Mixer, Snapshot, features, logp, quality_bucket


def _joint(v: np.ndarray) -> np.ndarray:
    m = np.minimum(np.abs(v), 3)
    return np.where(v == 0, 0, 2 * m - 1 + (v < 0))


class Recorder:
    """Collects (features, L, symbol, weight) rows while an encoder runs (numpy path)."""

    def __init__(self) -> None:
        self.mx = Mixer({"a": np.zeros((N_ACLS, 7), np.int16), "bias": np.zeros((N_BIAS, 7), np.int16),
                         "lg": w2mix.make_lg(), "exp": w2mix.make_exp()})
        self.qb = 0
        self.F: list[np.ndarray] = []
        self.L: list[np.ndarray] = []
        self.S: list[np.ndarray] = []
        self.W: list[np.ndarray] = []

    def __call__(self, co, zctx, qquiet, busy_ctx, qbusy) -> None:
        snap = Snapshot(self.mx, co)
        if qquiet.size:
            z = [np.array([int(c)]) for c in zctx]
            h = np.bincount(_joint(qquiet), minlength=7)
            k = np.flatnonzero(h)
            self.F.append(np.repeat(features(z[0], z[1], z[3], self.qb), k.size, 0))
            self.L.append(np.repeat(snap.terms(*z), k.size, 0))
            self.S.append(k)
            self.W.append(h[k])
        if qbusy.size:
            sc, gc, rc, nc = busy_ctx
            self.F.append(features(sc, gc, nc, self.qb))
            self.L.append(snap.terms(sc, gc, rc, nc))
            self.S.append(_joint(qbusy))
            self.W.append(np.ones(qbusy.size, dtype=np.int64))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"f": np.concatenate(self.F).astype(np.int16),
                "T": np.concatenate(self.L).astype(np.int16),
                "s": np.concatenate(self.S).astype(np.int8),
                "w": np.concatenate(self.W).astype(np.int32)}


def collect(images: list[np.ndarray], qualities: list[float], log=print) -> dict[str, np.ndarray]:
    """Training rows of ``images`` x ``qualities`` (v3 encoder: same choices as v4)."""
    from ..codecs.wavelet2 import Wavelet2Codec, make_coders, step_code_for_quality

    codec = Wavelet2Codec()
    rec = Recorder()
    for i, img in enumerate(images):
        an = codec.analyse(img)
        for q in qualities:
            code = step_code_for_quality(q)
            rec.qb = quality_bucket(code)
            co = make_coders(3)
            co.mix_record = rec
            codec.encode_analysed(img.shape, an, code, codec.chroma_default, coders=co, version=3)
        log(f"w2mix: {i + 1}/{len(images)} images")
    return rec.arrays()


def _logits(a, B, f, L):
    z = L * a[f[:, 0]]           # feature 0: the band x pass class (scale class)
    for j in range(f.shape[1]):
        z = z + B[f[:, j]]
    return z


def bits(a, B, d: dict[str, np.ndarray]) -> float:
    """Ideal code length (bits) of the recorded symbols under the float mixer (a, B)."""
    z = _logits(a, B, d["f"].astype(np.int64), logp(d["T"].astype(np.int64)).astype(np.float64)) \
        * (np.log(2) / 256)
    z -= z.max(1, keepdims=True)
    lse = np.log(np.exp(z).sum(1))
    s = d["s"].astype(np.int64)
    return float(((lse - z[np.arange(s.size), s]) * d["w"]).sum() / np.log(2))


def baseline_bits(d: dict[str, np.ndarray]) -> float:
    """Ideal code length of the recorded symbols under the adaptive rows (from L)."""
    L = logp(d["T"].astype(np.int64)) / 256.0
    p = np.exp2(L)
    p /= p.sum(1, keepdims=True)
    s = d["s"].astype(np.int64)
    return float((-np.log2(p[np.arange(s.size), s]) * d["w"]).sum())


def train(d: dict[str, np.ndarray], iters: int = 400, max_rows: int = 600_000, lr: float = 0.01,
          seed: int = 0, log=print) -> tuple[np.ndarray, np.ndarray]:
    """Float mixer (a (7,), B (N_BIAS, 7) in 1/256 bit) by full-batch Adam."""
    w = d["w"].astype(np.float64)
    keep = np.arange(w.size)
    single = np.flatnonzero(w == 1)
    if single.size > max_rows:      # subsample the one-symbol rows, reweight them
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(single, max_rows, replace=False))
        keep = np.concatenate([np.flatnonzero(w != 1), pick])
        w[pick] = single.size / max_rows
    f, L, s, w = d["f"][keep].astype(np.int64), logp(d["T"][keep].astype(np.int64)) * 1.0, \
        d["s"][keep].astype(np.int64), w[keep]
    c = np.log(2) / 256              # logits in nats from 1/256-bit units
    a = np.ones((N_ACLS, 7))
    B = np.zeros((N_BIAS, 7))
    m = [np.zeros_like(a), np.zeros_like(B)]
    v = [np.zeros_like(a), np.zeros_like(B)]
    W = w / w.sum()
    n = np.arange(s.size)
    for it in range(1, iters + 1):
        z = _logits(a, B, f, L) * c
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        g = e / e.sum(1, keepdims=True)
        g[n, s] -= 1.0
        g *= W[:, None] * c
        gL = g * L
        ga = np.stack([np.bincount(f[:, 0], weights=gL[:, k], minlength=N_ACLS)
                       for k in range(7)], 1)
        gB = np.stack([np.bincount(f.ravel(), weights=np.repeat(g[:, k], f.shape[1]),
                                   minlength=N_BIAS) for k in range(7)], 1)
        for k, (p, gr) in enumerate(((a, ga), (B, gB))):
            m[k] = 0.9 * m[k] + 0.1 * gr
            v[k] = 0.999 * v[k] + 0.001 * gr * gr
            step = lr * (256 if k else 1)      # biases live in 1/256 bit
            p -= step * (m[k] / (1 - 0.9 ** it)) / (np.sqrt(v[k] / (1 - 0.999 ** it)) + 1e-12)
        np.maximum(a, 0.0, out=a)
        if it % 50 == 0:
            log(f"w2mix: iteration {it}/{iters}")
    return a, B


def quantize(a: np.ndarray, B: np.ndarray) -> dict[str, np.ndarray]:
    """The integer tables of the file."""
    return {"a": np.clip(np.round(a * (1 << A_SHIFT)), 0, 32767).astype(np.int16),
            "bias": np.clip(np.round(B), -32768, 32767).astype(np.int16),
            "lg": w2mix.make_lg(), "exp": w2mix.make_exp()}


def int_bits(t: dict[str, np.ndarray], d: dict[str, np.ndarray]) -> float:
    """Ideal code length under the exact integer evaluation (w2mix's arithmetic)."""
    mx = Mixer(t)
    out, step = 0.0, 1 << 20
    for i in range(0, d["s"].size, step):          # in chunks (memory)
        f = d["f"][i:i + step].astype(np.int64)
        T = d["T"][i:i + step].astype(np.int64)
        z = sum(mx.bias[f[:, j]] for j in range(f.shape[1]))
        a = mx.a[f[:, 0]]
        for L in w2mix.model_logp(T):
            z += -((a * -L) >> w2mix.A_SHIFT)
        e = mx.exp[np.minimum(z.max(1, keepdims=True) - z, w2mix.EXP_N - 1)]
        p = e * (1.0 / e.sum(1, keepdims=True))
        s = d["s"][i:i + step].astype(np.int64)
        out += float((-np.log2(p[np.arange(s.size), s]) * d["w"][i:i + step]).sum())
    return out


def save(t: dict[str, np.ndarray], out: Path, card: dict) -> str:
    """Write OUT.safetensors and OUT.json (model card with the SHA-256); returns the hash."""
    import hashlib

    from safetensors.numpy import save as st_save

    raw = st_save(t)
    out = Path(out)
    out.with_suffix(".safetensors").write_bytes(raw)
    sha = hashlib.sha256(raw).hexdigest()
    card = {**card, "file": out.with_suffix(".safetensors").name, "sha256": sha}
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    return sha


def photos(root: Path, per_folder: int, skip: int) -> list[Path]:
    from .w2priors import photos as pick

    return pick(root, per_folder, skip)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="training folder (held-back skipped)")
    p.add_argument("--out", type=Path, required=True, help="output path without extension")
    p.add_argument("--per-folder", type=int, default=12)
    p.add_argument("--skip", type=int, default=40)
    p.add_argument("--qualities", default="5,15,30,45,60,75")
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--max-rows", type=int, default=600_000)
    p.add_argument("--rows", type=Path, help="save/load the collected rows here (.npz)")
    p.add_argument("--max-side", type=int, default=768)
    a = p.parse_args(argv)
    from .w2priors import load

    t0 = time.time()
    files = photos(a.data, a.per_folder, a.skip)
    if a.rows and a.rows.exists():
        d = dict(np.load(a.rows))
    else:
        qs = [float(x) for x in a.qualities.split(",")]
        d = collect([load(f, a.max_side) for f in files], qs)
        if a.rows:
            np.savez(a.rows, **d)
    a_f, B = train(d, a.iters, a.max_rows)
    t = quantize(a_f, B)
    base, mixed = baseline_bits(d), int_bits(t, d)
    card = {"id": a.out.name.replace("_", "-"), "codec": "wavelet2",
            "what": f"integer mixer of wavelet2 format v4 (gancomp.w2mix): a ({N_ACLS}, 7) int16 "
                    "in 1/64, "
                    f"bias ({N_BIAS}, 7) int16 in 1/256 bit, lg ({w2mix.LG_N},) and exp "
                    f"({w2mix.EXP_N},) int32 tables; part of the v4 bitstream format",
            "config": {"qualities": a.qualities, "per_folder": a.per_folder, "skip": a.skip,
                       "iters": a.iters, "max_rows": a.max_rows, "max_side": a.max_side,
                       "optimizer": "full-batch Adam, lr 0.01 (x256 for the biases)"},
            "data": f"{len(files)} training photos of {a.data} ({a.per_folder} per subfolder "
                    f"after the first {a.skip}, held-back photos excluded; never Kodak)",
            "steps": a.iters,
            "results": {"train_symbols": int(d["w"].sum()),
                        "train_bits_adaptive": round(base), "train_bits_mixer_int": round(mixed),
                        "train_change_percent": round(100 * (mixed / base - 1), 3)},
            "command": "python -m gancomp.train.w2mix " + " ".join(
                sys.argv[1:] if argv is None else argv)}
    sha = save(t, a.out, card)
    print(f"w2mix: {mixed / base - 1:+.3%} ideal bits on the training rows; sha256 {sha}; "
          f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
