"""BD-rate of the newest wavelet2 rows against older ones in a bench cache file (same images and
settings): python scripts/w2_v2v3.py CACHE.jsonl OLD_FINGERPRINT NEW_FINGERPRINT (run without
fingerprints to list them). Per-point means over images, as gancomp.compare aggregates."""
import json, sys, numpy as np
from collections import OrderedDict
from gancomp.bdrate import bd_rate
from gancomp.compare import msssim_db
rows=[json.loads(l) for l in open(sys.argv[1])]
fps=OrderedDict()
for r in rows:
    if r["codec"]!="wavelet2": continue
    fp=json.loads(r["key"])[1]
    fps.setdefault(fp,[]).append(r)
for fp,rs in fps.items(): print(fp, len(rs), len({r['image'] for r in rs}))
if len(sys.argv) < 4:
    sys.exit(0)
old_fp, new_fp = sys.argv[2], sys.argv[3]
def curve(rs, images):
    pts={}
    for r in rs:
        if r["image"] in images: pts.setdefault(r["point"],[]).append(r)
    out=[]
    for p,v in sorted(pts.items()):
        bpp=np.mean([x["bpp"] for x in v]); mse=np.mean([x["mse"] for x in v])
        out.append((bpp, np.mean([x["psnr"] for x in v]), np.mean([x["ms_ssim"] for x in v])))
    return np.array(out)
imgs=set(r['image'] for r in fps[new_fp]) & set(r['image'] for r in fps[old_fp])
a=curve(fps[old_fp],imgs); b=curve(fps[new_fp],imgs)
print(len(imgs),"images; v3 vs v2 PSNR BD-rate", f"{bd_rate(a[:,0],a[:,1],b[:,0],b[:,1]):+.2f}%",
      "MS-SSIM", f"{bd_rate(a[:,0],msssim_db(a[:,2]),b[:,0],msssim_db(b[:,2])):+.2f}%")
