"""Kodak RD of the ``hyperprior`` codec: real .gcz sizes, PSNR, MS-SSIM and median encode /
decode seconds per quality, with BD-rates against JPEG (the local anchor measured on this
machine), the published bmshj2018-hyperprior curve and, with --wavelet, the wavelet codec
measured in the same run.

    python -m gancomp.benchmarks.hyperprior_kodak /work/shared/data/kodak --wavelet
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ANCHORS = Path(__file__).resolve().parents[3] / "shared" / "anchors"  # ../shared next to the checkout


def bd_rate(r1: list[float], p1: list[float], r2: list[float], p2: list[float]) -> float:
    """BD-rate (%) of curve 2 against curve 1 (gancomp.bdrate); NaN when they do not overlap."""
    from ..bdrate import bd_rate as _bd
    from ..errors import GanCompError

    try:
        return _bd(r1, p1, r2, p2)
    except GanCompError:
        return float("nan")


def _anchor(path: Path, method: str) -> tuple[list[float], list[float]]:
    """(bpp, PSNR) of one method of an anchors CSV (gancomp.anchors)."""
    from ..anchors import read_csv

    c = read_csv(path)[method]
    return c.bpp.tolist(), c.psnr.tolist()


def sweep(codec: str, files: list[Path], qualities: list[float], **opts) -> list[dict]:
    """Per quality: mean bpp (whole file), PSNR, MS-SSIM; median encode/decode seconds."""
    from PIL import Image

    from .. import api
    from ..metrics import bpp, ms_ssim, psnr

    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    api.decode(api.encode_array(images[0][:64, :64], codec=codec, quality=qualities[0], **opts))
    rows = []
    for q in qualities:
        r = {"bpp": [], "psnr": [], "ms_ssim": [], "enc": [], "dec": []}
        for img in images:
            t0 = time.perf_counter()
            data = api.encode_array(img, codec=codec, quality=q, **opts)
            t1 = time.perf_counter()
            rec = api.decode(data).pixels
            t2 = time.perf_counter()
            r["bpp"].append(bpp(len(data), img.shape[1], img.shape[0]))
            r["psnr"].append(psnr(img, rec))
            r["ms_ssim"].append(ms_ssim(img, rec))
            r["enc"].append(t1 - t0)
            r["dec"].append(t2 - t1)
        rows.append({"codec": codec, "quality": q, "bpp": float(np.mean(r["bpp"])),
                     "psnr": float(np.mean(r["psnr"])), "ms_ssim": float(np.nanmean(r["ms_ssim"])),
                     "enc_s": float(np.median(r["enc"])), "dec_s": float(np.median(r["dec"]))})
        print(f"{codec} q={q:g}: {rows[-1]['bpp']:.4f} bpp {rows[-1]['psnr']:.2f} dB "
              f"ms-ssim {rows[-1]['ms_ssim']:.4f} enc {rows[-1]['enc_s']:.2f}s "
              f"dec {rows[-1]['dec_s']:.2f}s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.hyperprior_kodak",
                                description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default="/work/shared/data/kodak")
    p.add_argument("--qualities", default="0,20,40,60,80,100")
    p.add_argument("--model", default=None, help="hyperprior model id (default: the default one)")
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--wavelet", action="store_true", help="also measure the wavelet codec")
    p.add_argument("--card", help="write the RD points into this model card (JSON)")
    p.add_argument("--report", default="docs/BENCHMARKS.md", help="'' to skip writing")
    a = p.parse_args(argv)
    import torch

    files = sorted(Path(a.folder).glob("*.png"))[: a.limit or None]
    qs = [float(q) for q in a.qualities.split(",")]
    opts = {"model": a.model} if a.model else {}
    rows = sweep("hyperprior", files, qs, **opts)
    hp_r, hp_p = [r["bpp"] for r in rows], [r["psnr"] for r in rows]
    curves = {"JPEG (anchor, this machine)": _anchor(ANCHORS / "kodak_classical_local.csv", "jpeg"),
              "WebP (anchor, this machine)": _anchor(ANCHORS / "kodak_classical_local.csv", "webp"),
              "bmshj2018-hyperprior (CompressAI)": _anchor(
                  ANCHORS / "compressai_kodak_rd.csv", "compressai-bmshj2018-hyperprior_mse_ans_cuda_8bit")}
    wrows = []
    if a.wavelet:
        wrows = sweep("wavelet", files, [10, 25, 40, 55, 70, 85])
        curves["wavelet (this run)"] = ([r["bpp"] for r in wrows], [r["psnr"] for r in wrows])
    from ..weights import default_for, find

    card = find(a.model) if a.model else default_for("hyperprior")
    lines = [f"Kodak ({len(files)} images), model `{card.id}` ({card.card.get('steps')} steps), "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads. bpp from the whole "
             ".gcz file; PSNR on 8-bit RGB per image, averaged; times are medians per image.",
             "", "| codec | quality | bpp | PSNR dB | MS-SSIM | enc s | dec s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows + wrows:
        lines.append(f"| {r['codec']} | {r['quality']:g} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
                     f"{r['ms_ssim']:.4f} | {r['enc_s']:.2f} | {r['dec_s']:.2f} |")
    lines += ["", "| BD-rate of hyperprior against | PSNR BD-rate |", "|---|---|"]
    bds = {}
    for name, (r, ps) in curves.items():
        bds[name] = bd_rate(r, ps, hp_r, hp_p)
        lines.append(f"| {name} | {bds[name]:+.1f}% |")
    cmd = "python -m gancomp.benchmarks.hyperprior_kodak " + " ".join(argv if argv is not None else sys.argv[1:])
    lines += ["", f"Command: `{cmd}`"]
    text = "\n".join(lines)
    print(text)
    if a.report:
        from ..report import write_section

        write_section(a.report, "hyperprior-kodak", "## hyperprior on Kodak\n\n" + text)
    if a.card:
        path = Path(a.card)
        c = json.loads(path.read_text())
        c["results"] = {"kodak": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                                  for r in rows],
                        "bd_rate_psnr_percent": {k: round(v, 1) for k, v in bds.items()},
                        "command": cmd}
        path.write_text(json.dumps(c, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
