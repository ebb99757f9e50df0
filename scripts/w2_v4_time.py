"""In-process CPU ms (median of 9) of wavelet2 v3 and v4 encode/decode on kodim01-05 at -q 32,
alternating in one process (issue 10 item 3: the mixer's cost). python scripts/w2_v4_time.py"""
import time, numpy as np
from gancomp.codecs import wavelet2 as W
from PIL import Image
c = W.Wavelet2Codec(); code = W.step_code_for_quality(32)
tot = {3: [0, 0], 4: [0, 0]}
for i in range(1, 6):
    im = np.asarray(Image.open(f'/work/shared/data/kodak/kodim0{i}.png').convert('RGB'))
    res = {3: [], 4: []}
    for rep in range(9):
        for v in (3, 4):
            t = time.process_time(); e = c.encode(im, 32) if v == 4 else c.encode_analysed(im.shape, c.analyse(im), code, c.chroma_default, version=3); te = time.process_time() - t
            t = time.process_time(); c.decode(e.params, e.streams, im.shape[1], im.shape[0], 3); td = time.process_time() - t
            res[v].append((te, td))
    for v in (3, 4):
        a = np.array(res[v]); m = np.median(a, 0); tot[v][0] += m[0]; tot[v][1] += m[1]
    print(f'kodim0{i}', {v: np.round(np.median(np.array(res[v]), 0) * 1e3, 1).tolist() for v in (3, 4)}, flush=True)
print('sum of medians ms', {v: np.round(np.array(tot[v]) * 1e3, 1).tolist() for v in (3, 4)})
