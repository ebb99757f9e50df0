"""CPU seconds per wavelet2 stage, v2 vs v3, in-process (min of 5) on one image at -q 32:
python scripts/w2_stages.py IMAGE (use a training photo, not Kodak, while developing)."""
import sys, time, numpy as np
from gancomp.imageio import load_image
from gancomp.codecs import wavelet2 as W
from gancomp import subband3, subband, dwt97, postfilter
img = load_image(sys.argv[1]).pixels
T={}
def wrap(mod, name, label):
    f=getattr(mod,name)
    def g(*a, **k):
        t=time.process_time(); r=f(*a, **k); T[label]=T.get(label,0)+time.process_time()-t; return r
    setattr(mod,name,g)
wrap(W,'code_band','entropy (bands)'); wrap(subband3,'code_group','entropy (bands)')
wrap(W,'code_ll','entropy (LL)')
wrap(W,'BandInfo','contexts setup'); wrap(subband3,'Canvas','contexts setup')
wrap(dwt97,'inverse','inverse DWT'); wrap(dwt97,'forward','forward DWT')
wrap(postfilter,'apply','post-filter apply'); wrap(postfilter,'fit','post-filter fit')
wrap(subband.RD,'choose','RDO choice')
c = W.Wavelet2Codec()
for v in (2,3):
    W.VERSION=v
    e = c.encode(img, 32)
    for mode in ('enc','dec'):
        best={}
        for _ in range(5):
            T.clear(); t=time.process_time()
            if mode=='dec': c.decode(e.params, e.streams, img.shape[1], img.shape[0], 3)
            else: c.encode(img,32)
            T['TOTAL']=time.process_time()-t
            for k,x in T.items(): best[k]=min(best.get(k,9),x)
        print(f"v{v} {mode} bytes {len(e.streams[0])}:", ", ".join(f"{k} {x:.3f}" for k,x in best.items()))
