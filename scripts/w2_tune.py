"""Dev harness for wavelet2 tuning: PSNR BD-rate vs WebP on a few TRAINING photos (never Kodak,
never the held-back ones). Usage: python scripts/w2_tune.py [N_IMAGES] [key=value ...]
(key=value overrides module constants of gancomp.codecs.wavelet2 / gancomp.subband)."""
import io, sys, time
from pathlib import Path
import numpy as np
from PIL import Image

from gancomp.bdrate import bd_rate
from gancomp.metrics import psnr
from gancomp.train.data import is_held_out
import gancomp.codecs.wavelet2 as w2
import gancomp.subband as sb

CROP = (256, 384)
ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
if not ROOT.is_dir():
    ROOT = Path("/work/shared/data/train")


def images(n):
    out = []
    for sub in ("urban100", "bsds500", "sun_hays80"):
        fs = [f for f in sorted((ROOT / sub).iterdir()) if not is_held_out(f)]
        for f in fs[5:5 + max(1, n // 3)]:
            im = Image.open(f).convert("RGB")
            if sub == "sun_hays80":
                im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS)
            a = np.asarray(im)
            h, w = a.shape[:2]
            ch, cw = min(h, CROP[0]), min(w, CROP[1])
            out.append((f.name, a[(h - ch) // 2:(h + ch) // 2, (w - cw) // 2:(w + cw) // 2]))
    return out


ANCHOR = "webp"


def webp(img, q):
    b = io.BytesIO()
    if ANCHOR == "j2k":
        Image.fromarray(img).save(b, format="JPEG2000", quality_mode="rates",
                                  quality_layers=[480.0 * (2.0 / 480.0) ** (q / 100.0)], irreversible=True, mct=1)
    else:
        Image.fromarray(img).save(b, format="WEBP", quality=q, method=4)
    return len(b.getvalue()), np.asarray(Image.open(io.BytesIO(b.getvalue())).convert("RGB"))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    apply(sys.argv[2:])
    run(n)


def apply(kvs):
    """Apply KEY=VALUE experiment overrides."""
    global ANCHOR, CROP
    for kv in kvs:
        k, v = kv.split("=")
        if k == "LW":   # experiment: per-level step multiplier 2^(LW * levels_from_finest / 16)
            lw = float(v)
            orig = w2._Steps.__init__

            def init(self, sc, cc, levels, channels, _o=orig, _lw=lw):
                _o(self, sc, cc, levels, channels)
                self.ll = [x * 2 ** (_lw * levels / 16) for x in self.ll]
                self.det = [[tuple(x * 2 ** (_lw * (levels - 1 - k) / 16) for x in lev)
                             for k, lev in enumerate(ch)] for ch in self.det]
            w2._Steps.__init__ = init
            continue
        if k == "BLOCK":   # experiment: fixed blocks of BLOCK symbols, no early cuts
            bs = int(v)

            def chunks(self, contexts, _b=bs):
                n = contexts.size
                for a in range(0, n, _b):
                    yield a, min(n, a + _b)
            sb._Coder._chunks = chunks
            continue
        if k == "FULL":
            CROP = (4096, 4096)
            continue
        if k == "ANCHOR":
            ANCHOR = v
            continue
        if k == "PRIORS":
            import hashlib
            w2.FORMATS[w2.VERSION] = (str(Path(v).resolve()), hashlib.sha256(
                Path(v).read_bytes()).hexdigest() if v != "none" else "", w2.FORMATS[w2.VERSION][2])
            w2._PRIORS.clear()
            continue
        if k == "PASSES4":
            sb.PASSES = ((0, 0, 2, 1, 0), (1, 1, 2, 1, 2), (0, 1, 2, 1, 3), (1, 0, 2, 1, 3))
            continue
        if k == "HALVE_AT":
            w2.FORMATS[w2.VERSION] = w2.FORMATS[w2.VERSION][:2] + (int(v),)
            continue
        mod = w2 if hasattr(w2, k) else sb
        setattr(mod, k, type(getattr(mod, k))(float(v)) if not isinstance(getattr(mod, k), int) else int(v))


def run(n):
    codec = w2.Wavelet2Codec()
    qs = [0, 12, 24, 36, 48, 60]
    wq = [5, 20, 40, 60, 80, 90] if ANCHOR == "webp" else [20, 30, 40, 50, 60, 70]
    tot = []
    te = td = 0.0
    for name, img in images(n):
        px = img.shape[0] * img.shape[1]
        r1, p1 = [], []
        for q in qs:
            t = time.time(); enc = codec.encode(img, q); te += time.time() - t
            nbytes = sum(len(s) for s in enc.streams) + 30 + sum(
                len(v) + 3 for v in enc.params.values() if isinstance(v, bytes))
            t = time.time(); rec = codec.decode(enc.params, enc.streams, img.shape[1], img.shape[0], 3); td += time.time() - t
            r1.append(nbytes * 8 / px); p1.append(psnr(img, rec))
        r2, p2 = [], []
        for q in wq:
            nb, rec = webp(img, q)
            r2.append(nb * 8 / px); p2.append(psnr(img, rec))
        bd = bd_rate(r2, p2, r1, p1)
        tot.append(bd)
        print(f"{name:40s} bd={bd:+.2f}%  bpp {r1[0]:.3f}-{r1[-1]:.3f} psnr {p1[0]:.2f}-{p1[-1]:.2f}", flush=True)
    print(f"MEAN bd vs {ANCHOR} {np.mean(tot):+.2f}%   enc {te:.1f}s dec {td:.1f}s")


if __name__ == "__main__":
    main()
