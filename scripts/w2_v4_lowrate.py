"""Bytes of wavelet2 v2, v3 and v4 at low qualities (0-20) on the first 4 held-back photos that are
not from bsds500 (the low-rate overhead of v3 over v2; observation only, nothing was tuned on
these). python scripts/w2_v4_lowrate.py"""
import numpy as np, glob, sys
from gancomp.codecs import wavelet2 as W
from gancomp.train.w2priors import load
from gancomp.train.data import is_held_out
from pathlib import Path
files = sorted(glob.glob('/work/shared/data/train/*/*'))
he = [f for f in files if is_held_out(f)]
he = [f for f in he if 'bsds' not in f][:4]
c = W.Wavelet2Codec()
for f in he:
    im = load(Path(f)); an = c.analyse(im)
    for q in (0, 5, 10, 20):
        code = W.step_code_for_quality(q)
        r = {v: len(c.encode_analysed(im.shape, an, code, c.chroma_default, version=v).streams[0]) for v in (2, 3, 4)}
        print(Path(f).name, im.shape, q, r, f"bpp3 {r[3]*8/im.shape[0]/im.shape[1]:.3f}", flush=True)
