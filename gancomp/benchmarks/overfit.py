"""RD of the ``overfit`` codec per effort on a fixed Kodak subset, beside WebP, AVIF, HEIC and
JPEG XL measured in the same run on the same pixels; encode seconds per image per effort.

Sets: ``full`` = kodim01, 04, 05, 08, 14, 19, 21, 23 at full size; ``crops`` = 384x256 centre
crops of kodim01, 05, 14, 23. Encodes are slow, so every finished point is cached as a JSON
file (plus its .gcz) under --cache and skipped on the next run: the suite is resumable and
its report covers whatever has finished (the table says how many images each point has).

    gancomp bench --suite overfit ../shared/data/kodak --set crops --efforts 1,3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

SECTION = "overfit"
SETS = {"full": ["kodim01", "kodim04", "kodim05", "kodim08", "kodim14", "kodim19", "kodim21",
                 "kodim23"],
        "crops": ["kodim01", "kodim05", "kodim14", "kodim23"]}
CROP = (256, 384)
QUALITIES = (15.0, 40.0, 65.0, 90.0)
BASELINES = {"webp": (0, 5, 15, 30, 50, 70, 85, 95), "avif": (5, 12, 22, 35, 50, 62, 72, 80),
             "heic": (5, 12, 20, 27, 34, 41, 48), "jpegxl": None}
DEFAULT_CACHE = "docs/overfit_bench"


def load(folder: Path, name: str, which: str) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(folder / f"{name}.png").convert("RGB"))
    if which == "crops":
        h, w = img.shape[:2]
        if h > w:  # portrait Kodak images: crop 256x384 the other way round
            ch, cw = CROP[1], CROP[0]
        else:
            ch, cw = CROP
        y, x = (h - ch) // 2, (w - cw) // 2
        img = img[y:y + ch, x:x + cw]
    return np.ascontiguousarray(img)


def point(img: np.ndarray, q: float, effort: int, device: str | None, extra: dict) -> dict:
    """Encode and decode one image; the score comes from the decoded file."""
    from .. import api
    from ..metrics import psnr

    t0 = time.perf_counter()
    res = api.encode_array_ex(img, "overfit", q, effort=effort, device=device, **extra)
    t1 = time.perf_counter()
    rec = api.decode(res.data).pixels
    t2 = time.perf_counter()
    h, w = img.shape[:2]
    return {"bpp": len(res.data) * 8 / (h * w), "psnr": float(psnr(img, rec)), "bytes": len(res.data),
            "enc_s": t1 - t0, "dec_s": t2 - t1, "notes": res.notes,
            "decoded_sha256": hashlib.sha256(rec.tobytes()).hexdigest()}, res.data


def baseline_curve(name: str, imgs: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Mean (bpp, PSNR) per quality of a classical codec over the images."""
    from .. import baselines
    from ..metrics import psnr

    c = baselines.get(name)
    qs = BASELINES[name] if BASELINES[name] else c.sweep_qualities()
    rates, psnrs = [], []
    for q in qs:
        b, p = [], []
        for img in imgs:
            data = c.encode(img, q)
            b.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
            p.append(psnr(img, c.decode(data)))
        rates.append(float(np.mean(b)))
        psnrs.append(float(np.mean(p)))
    return rates, psnrs


def _bd(r1, p1, r2, p2) -> float:
    from ..bdrate import bd_rate
    from ..errors import GanCompError

    try:
        return bd_rate(r1, p1, r2, p2)
    except GanCompError:
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gancomp bench --suite overfit", description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default="../shared/data/kodak")
    p.add_argument("--set", dest="sets", default="crops", help="crops, full or crops,full")
    p.add_argument("--efforts", default="1")
    p.add_argument("--qualities", default=",".join(f"{q:g}" for q in QUALITIES))
    p.add_argument("--cache", default=DEFAULT_CACHE)
    p.add_argument("--device", default=None)
    p.add_argument("--iters", type=int, default=None, help="override iterations (quick checks)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the cache")
    p.add_argument("--images", type=int, default=None)
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    folder = Path(a.folder)
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    efforts = [int(e) for e in a.efforts.split(",")]
    qs = [float(q) for q in a.qualities.split(",")]
    extra = {"iters": a.iters} if a.iters else {}
    tag = f"-i{a.iters}" if a.iters else ""
    for which in a.sets.split(","):
        names = SETS[which][: a.images or None]
        imgs = {n: load(folder, n, which) for n in names}
        if not a.report_only:
            for e in efforts:
                for n in names:
                    for q in qs:
                        key = cache / f"{which}-e{e}{tag}-{n}-q{q:g}"
                        if key.with_suffix(".json").exists():
                            continue
                        r, data = point(imgs[n], q, e, a.device, extra)
                        r.update(image=n, set=which, effort=e, quality=q, iters_override=a.iters)
                        key.with_suffix(".gcz").write_bytes(data)
                        key.with_suffix(".json").write_text(json.dumps(r, indent=1) + "\n")
                        print(f"{which} e{e} {n} q{q:g}: {r['bpp']:.4f} bpp {r['psnr']:.2f} dB "
                              f"enc {r['enc_s']:.0f}s dec {r['dec_s']:.2f}s", file=sys.stderr, flush=True)
        report(a, cache, folder)
    return 0


def report(a, cache: Path, folder: Path) -> str:
    """Tables (per set and effort) from every cached point, BD-rates, plot; writes the section."""
    from ..compare import Curve

    rows = [json.loads(f.read_text()) for f in sorted(cache.glob("*.json"))]
    lines = ["Overfitted codec (`overfit`, one torch thread per encode, 2 shared CPU cores) on "
             "the Kodak subset; bpp from the whole .gcz file, PSNR on 8-bit RGB of the decoded "
             "file, averaged per point over the images that finished. Classical codecs measured "
             "in the same run on the same pixels.", ""]
    curves: dict[str, Curve] = {}
    for which in ("crops", "full"):
        sel = [r for r in rows if r["set"] == which and not r.get("iters_override")]
        if not sel:
            continue
        names = sorted({r["image"] for r in sel})
        imgs = [load(folder, n, which) for n in names]
        base = {b: baseline_curve(b, imgs) for b in BASELINES}
        lines += [f"### {which} ({', '.join(names)})", "",
                  "| codec | effort | quality | images | bpp | PSNR dB | enc s/image | dec s |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in sorted({r["effort"] for r in sel}):
            pts = []
            for q in sorted({r["quality"] for r in sel if r["effort"] == e}):
                rr = [r for r in sel if r["effort"] == e and r["quality"] == q]
                pts.append((np.mean([r["bpp"] for r in rr]), np.mean([r["psnr"] for r in rr]),
                            len(rr), q, np.mean([r["enc_s"] for r in rr]),
                            np.mean([r["dec_s"] for r in rr])))
                lines.append(f"| overfit | {e} | {q:g} | {len(rr)} | {pts[-1][0]:.4f} | "
                             f"{pts[-1][1]:.2f} | {pts[-1][4]:.0f} | {pts[-1][5]:.2f} |")
            full = [pt for pt in pts if pt[2] == len(names)]
            if len(full) >= 4:
                curves[f"overfit e{e} ({which})"] = Curve(f"overfit e{e} ({which})",
                                                          np.array([pt[0] for pt in full]),
                                                          np.array([pt[1] for pt in full]),
                                                          np.full(len(full), np.nan))
        for b, (r_, p_) in base.items():
            for x, y in zip(r_, p_):
                lines.append(f"| {b} | | | {len(names)} | {x:.4f} | {y:.2f} | | |")
            curves[f"{b} ({which})"] = Curve(f"{b} ({which})", np.array(r_), np.array(p_),
                                             np.full(len(r_), np.nan))
        lines += ["", "| curve | BD-rate vs WebP | vs AVIF | vs HEIC | vs JPEG XL |", "|---|---|---|---|---|"]
        for name, c in curves.items():
            if not name.startswith("overfit") or f"({which})" not in name:
                continue
            bds = [_bd(*base[b], c.bpp, c.psnr) for b in ("webp", "avif", "heic", "jpegxl")]
            lines.append(f"| {name} | " + " | ".join(f"{v:+.1f}%" for v in bds) + " |")
        lines.append("")
    cmd = "gancomp bench --suite overfit " + " ".join(shlex.quote(x) for x in sys.argv[3:]) \
        if len(sys.argv) > 3 else "gancomp bench --suite overfit"
    lines += [f"Command: `{cmd}` (cached points in `{DEFAULT_CACHE}/`, one JSON + .gcz each)."]
    text = "\n".join(lines)
    print(text)
    if not a.no_write and curves:
        from ..rdplot import plot

        plot(curves, "docs/overfit_rd.png", title="overfit vs classical codecs (Kodak subset)",
             metrics=("psnr",))
        text += "\n\n![overfit RD](overfit_rd.png)"
        from ..report import write_section

        write_section(a.out, SECTION, "## overfit (overfitted neural codec) on a Kodak subset\n\n" + text)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
