"""Kodak RD of the ``hyperprior`` codec, one or more models side by side (before/after):
real .gcz sizes, PSNR, MS-SSIM and median encode / decode seconds per quality, with JPEG and
WebP measured in the same run on the same images, and BD-rates against them, the published
bmshj2018-hyperprior curve (CompressAI) and the local JPEG anchor.

    python -m gancomp.benchmarks.hyperprior_kodak /work/shared/data/kodak --models hp-a1,hp-a2
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


def _anchor(path: Path, method: str) -> tuple[list[float], list[float]] | None:
    """(bpp, PSNR) of one method of an anchors CSV (gancomp.anchors); None if absent."""
    from ..anchors import read_csv

    if not path.is_file():
        return None
    c = read_csv(path)[method]
    return c.bpp.tolist(), c.psnr.tolist()


def _row(codec: str, q: float, r: dict) -> dict:
    return {"codec": codec, "quality": q, "bpp": float(np.mean(r["bpp"])),
            "psnr": float(np.mean(r["psnr"])), "ms_ssim": float(np.nanmean(r["ms_ssim"])),
            "enc_s": float(np.median(r["enc"])), "dec_s": float(np.median(r["dec"]))}


def _print(row: dict) -> None:
    print(f"{row['codec']} q={row['quality']:g}: {row['bpp']:.4f} bpp {row['psnr']:.2f} dB "
          f"ms-ssim {row['ms_ssim']:.4f} enc {row['enc_s']:.2f}s dec {row['dec_s']:.2f}s",
          file=sys.stderr)


def sweep(codec: str, images: list[np.ndarray], qualities: list[float], label: str | None = None,
          **opts) -> list[dict]:
    """Per quality: mean bpp (whole .gcz file), PSNR, MS-SSIM; median encode/decode seconds."""
    from .. import api
    from ..metrics import bpp, ms_ssim, psnr

    api.decode(api.encode_array(images[0][:64, :64], codec=codec, quality=qualities[0], **opts))
    rows = []
    for q in qualities:
        r: dict[str, list] = {"bpp": [], "psnr": [], "ms_ssim": [], "enc": [], "dec": []}
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
        rows.append(_row(label or codec, q, r))
        _print(rows[-1])
    return rows


def sweep_classical(name: str, images: list[np.ndarray]) -> list[dict]:
    """The same measures for a classical codec (real files through gancomp.baselines)."""
    from .. import baselines
    from ..metrics import bpp, ms_ssim, psnr

    c = baselines.get(name)
    rows = []
    for q in c.sweep_qualities():
        r: dict[str, list] = {"bpp": [], "psnr": [], "ms_ssim": [], "enc": [], "dec": []}
        for img in images:
            t0 = time.perf_counter()
            data = c.encode(img, q)
            t1 = time.perf_counter()
            rec = c.decode(data)
            t2 = time.perf_counter()
            r["bpp"].append(bpp(len(data), img.shape[1], img.shape[0]))
            r["psnr"].append(psnr(img, rec))
            r["ms_ssim"].append(ms_ssim(img, rec))
            r["enc"].append(t1 - t0)
            r["dec"].append(t2 - t1)
        rows.append(_row(name, q, r))
        _print(rows[-1])
    return rows


_NAMES = {"jpeg": "JPEG", "webp": "WebP", "jpeg2000": "JPEG 2000", "avif": "AVIF", "jpegxl": "JPEG XL"}


def edge_steps(img: np.ndarray, tile: int) -> tuple[float, float]:
    """(mean absolute step between the two pixel columns and rows at tile edges, median step
    between all other neighbouring columns and rows): a seam makes the first larger."""
    steps = []
    for axis in (1, 0):
        d = np.abs(np.diff(img.astype(np.float64), axis=axis)).mean(axis=(1 - axis, 2))
        edge = np.arange(tile - 1, d.size, tile)
        steps.append((d[edge], np.delete(d, edge)))
    edge = np.concatenate([e for e, _ in steps])
    other = np.concatenate([o for _, o in steps])
    return (float(edge.mean()) if edge.size else float("nan")), float(np.median(other))


def seams(images: list[np.ndarray], tile: int, quality: float, model: str | None) -> list[str]:
    """Edge step vs elsewhere for tiles coded independently (the v1 layout: each tile its own
    image) and for the v2 layout (overlapping tiles of one latent), plus the one-tile decode."""
    from .. import api

    opts = {"model": model} if model else {}
    acc: dict[str, list[tuple[float, float]]] = {"independent tiles (v1 layout)": [],
                                                 f"v2 layout, tile={tile}": [],
                                                 "one tile (no edges; reference)": []}
    for img in images:
        h, w, _ = img.shape
        ind = np.zeros_like(img)
        for y in range(0, h, tile):
            for x in range(0, w, tile):
                ind[y:y + tile, x:x + tile] = api.decode(api.encode_array(
                    img[y:y + tile, x:x + tile], codec="hyperprior", quality=quality, **opts)).pixels
        v2 = api.decode(api.encode_array(img, codec="hyperprior", quality=quality, tile=tile,
                                         **opts)).pixels
        one = api.decode(api.encode_array(img, codec="hyperprior", quality=quality, tile=4096,
                                          **opts)).pixels
        for key, rec in zip(acc, (ind, v2, one)):
            acc[key].append(edge_steps(rec, tile))
    lines = [f"Seams: mean step across the pixel rows/columns at {tile}-px tile edges vs the "
             f"median step elsewhere, {len(images)} images, quality {quality:g}, model "
             f"`{model or 'default'}`.", "", "| layout | edge step | elsewhere | ratio |",
             "|---|---|---|---|"]
    for key, v in acc.items():
        e, o = float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v]))
        lines.append(f"| {key} | {e:.2f} | {o:.2f} | {e / o:.2f} |")
    return lines


def _curve(rows: list[dict]) -> tuple[list[float], list[float]]:
    return [r["bpp"] for r in rows], [r["psnr"] for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.hyperprior_kodak",
                                description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default="/work/shared/data/kodak")
    p.add_argument("--models", default="", help="comma-separated hyperprior model ids "
                   "(default: the default model)")
    p.add_argument("--from-card", default="", help="comma-separated model ids whose Kodak rows "
                   "are taken from their model card (measured earlier, all 24 images) instead "
                   "of measured again; shown as 'card'")
    p.add_argument("--qualities", default="0,20,40,60,80,100")
    p.add_argument("--classical", default="jpeg,webp", help="classical codecs measured in this run")
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--card", action="append", default=[],
                   help="write the RD points of the model with this card's id into it (JSON path)")
    p.add_argument("--json", help="also write all rows to this JSON file")
    p.add_argument("--report", default="docs/BENCHMARKS.md", help="'' to skip writing")
    p.add_argument("--section", default="hyperprior-kodak", help="section key in the report")
    p.add_argument("--held-out", metavar="DIR", help="measure on the held-back photos of this "
                   "training folder instead of Kodak (use with --section)")
    p.add_argument("--seams", type=int, default=0, metavar="TILE",
                   help="only measure tile seams at this tile size (section hyperprior-seams)")
    a = p.parse_args(argv)
    import torch
    from PIL import Image

    from ..weights import default_for, find

    if a.held_out:   # the held-back training photos (never trained on): unseen photos
        from ..train.data import list_images, split_held_out

        files = split_held_out(list_images(a.held_out))[1][: a.limit or None]
    else:
        files = sorted(Path(a.folder).glob("*.png"))[: a.limit or None]
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    qs = [float(q) for q in a.qualities.split(",")]
    cards = [find(m) for m in a.models.split(",") if m] or [default_for("hyperprior")]
    cmd = "python -m gancomp.benchmarks.hyperprior_kodak " + " ".join(
        argv if argv is not None else sys.argv[1:])
    if a.seams:
        text = "\n".join(seams(images, a.seams, qs[0], cards[0].id) + ["", f"Command: `{cmd}`"])
        print(text)
        if a.report:
            from ..report import write_section

            write_section(a.report, "hyperprior-seams", "## hyperprior tile seams\n\n" + text)
        return 0
    results: dict[str, list[dict]] = {}
    for mid in filter(None, a.from_card.split(",")):
        c = find(mid).card
        results[f"{mid} (card)"] = [dict(r, codec=f"hyperprior {mid} (card)")
                                    for r in c["results"]["kodak"]]
        print(f"{mid}: rows from its card, measured by `{c['results'].get('command')}`",
              file=sys.stderr)
    for card in cards:
        results[card.id] = sweep("hyperprior", images, qs, label=f"hyperprior {card.id}", model=card.id)
    classical = {n: sweep_classical(n, images) for n in a.classical.split(",") if n}
    refs: dict[str, tuple[list[float], list[float]]] = {
        f"{_NAMES.get(n, n)} (this run)": _curve(rows)
        for n, rows in classical.items()}
    for label, (csv, method) in {
            "JPEG (anchor file)": ("kodak_classical_local.csv", "jpeg"),
            "bmshj2018-hyperprior (CompressAI, published)": (
                "compressai_kodak_rd.csv", "compressai-bmshj2018-hyperprior_mse_ans_cuda_8bit")}.items():
        curve = _anchor(ANCHORS / csv, method)
        if curve:
            refs[label] = curve
    where = f"Held-back training photos of {a.held_out}" if a.held_out else "Kodak"
    lines = [f"{where} ({len(files)} images), torch {torch.__version__}, "
             f"{torch.get_num_threads()} thread(s). bpp from the whole file (.gcz, .jpg, .webp); "
             "PSNR on 8-bit RGB per image, averaged; times are medians per image on a shared box.",
             "", "| model | steps | lambdas | weights MB |", "|---|---|---|---|"]
    for card in cards:
        lines.append(f"| `{card.id}` | {card.card.get('steps')} | "
                     f"{(card.card.get('config') or {}).get('lambdas')} | {card.size / 1e6:.1f} |")
    lines += ["", "| codec | quality | bpp | PSNR dB | MS-SSIM | enc s | dec s |",
              "|---|---|---|---|---|---|---|"]
    for rows in [*results.values(), *classical.values()]:
        for r in rows:
            lines.append(f"| {r['codec']} | {r['quality']:g} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
                         f"{r['ms_ssim']:.4f} | {r['enc_s']:.2f} | {r['dec_s']:.2f} |")
    lines += ["", "PSNR BD-rate of each model against (negative = fewer bits for the same PSNR):", "",
              "| model | lowest bpp | " + " | ".join(refs) + " |",
              "|---|---|" + "---|" * len(refs)]
    bds: dict[str, dict[str, float]] = {}
    for mid, rows in results.items():
        r2, p2 = _curve(rows)
        bds[mid] = {name: bd_rate(r1, p1, r2, p2) for name, (r1, p1) in refs.items()}
        lines.append(f"| `{mid}` | {min(r2):.3f} | " +
                     " | ".join(f"{v:+.1f}%" for v in bds[mid].values()) + " |")
    for mid in filter(None, a.from_card.split(",")):
        lines += ["", f"`{mid} (card)`: rows from the model card, measured earlier on all 24 "
                  f"images by `{find(mid).card['results'].get('command')}` (before this "
                  "version's entropy-coding fixes)."]
    lines += ["", f"Command: `{cmd}`"]
    text = "\n".join(lines)
    print(text)
    if a.report:
        from ..report import write_section

        title = "held-back photos" if a.held_out else "Kodak"
        write_section(a.report, a.section, f"## hyperprior on {title}\n\n" + text)
    if a.json:
        Path(a.json).write_text(json.dumps({"models": results, "classical": classical,
                                            "bd_rate_psnr_percent": bds, "command": cmd}, indent=1))
    for path in map(Path, a.card):
        c = json.loads(path.read_text())
        if c["id"] not in results or c["id"] not in bds:
            print(f"card {path}: model {c['id']} was not measured; left alone", file=sys.stderr)
            continue
        c["results"] = {"kodak": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                                  for r in results[c["id"]]],
                        "bd_rate_psnr_percent": {k: round(v, 1) for k, v in bds[c["id"]].items()},
                        "command": cmd}
        path.write_text(json.dumps(c, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
