"""Benchmark of ``generative`` and ``ablative`` (issue 15), one command:

    python -m gancomp.benchmarks.generative --kodak ../shared/data/kodak \\
        --faces ../shared/data/faces --save runs/i15-bench

1. Kodak at about 0.1 and 0.2 bpp: ``generative`` (the highest quality whose file fits the
   target, found by bisection) scored with ``--decoder gan`` and ``--decoder mse`` from the
   same file; HEIC, AVIF, WebP and JPEG at the highest quality whose file is no larger than
   the generative file (or their smallest file when they cannot get that small).
2. Held-out faces (last 500 sorted ids) at about 0.25 bpp, the same way, with a face model.
3. ``ablative`` against seed 004's SSIM table: JPEG at qualities 1, 5, 25, 50, and ablative at
   the bpp of JPEG quality 5 (per image, bisection over the kept fraction), per block quality.

Metrics: PSNR, MS-SSIM (pytorch_msssim, NaN under 161 px), SSIMULACRA2 (the ``ssimulacra2``
package), SSIM (skimage) for the ablative table. bpp counts whole files. Per-image results
are appended to ``SAVE/rows.jsonl`` (reruns skip what is there); .gcz files are kept in SAVE
and ``--verify N`` decodes the first N images' files in another process with
OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=default and compares them with the scored pixels.
Writes section ``i15-generative`` of docs/BENCHMARKS.md and docs/i15_generative_grid.png.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from .. import api, metrics
from ..compare import find_quality_for_bpp, resolve_codecs

DOCS = Path(__file__).resolve().parents[2] / "docs"
ROOT = Path(__file__).resolve().parents[2]
BASELINES = ("heic", "avif", "webp", "jpeg")
GRID_IMAGES = ("kodim05", "kodim13", "kodim23")


def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
    """SSIMULACRA2 score (100 = identical; below 0 = very poor) via the ``ssimulacra2`` package."""
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    bufs = []
    for arr in (a, b):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", compress_level=0)
        buf.seek(0)
        bufs.append(buf)
    return float(compute_ssimulacra2(bufs[0], bufs[1]))


def scores(orig: np.ndarray, rec: np.ndarray, nbytes: int) -> dict:
    return {"bpp": nbytes * 8 / (orig.shape[0] * orig.shape[1]), "psnr": metrics.psnr(orig, rec),
            "ms_ssim": metrics.ms_ssim(orig, rec), "ssimulacra2": ssimulacra2(orig, rec),
            "ssim": metrics.ssim(orig, rec)}


def _md5(a: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(a).tobytes()).hexdigest()


def gen_at(img: np.ndarray, target: float, opts: dict, steps: int = 6) -> tuple[bytes, float, bool]:
    """(file, quality, missed): the highest generative quality whose file fits ``target``
    (bisection of 0..100 in ``steps`` halvings). The search runs with ``tune=0`` through the
    codec's trial encoder (a wavelet2-based model analyses the image once; the strength a
    version-3 encoder picks changes no size); the chosen quality is then encoded with
    ``opts`` as given."""
    from ..codecs import get_codec

    px = img.shape[0] * img.shape[1]
    codec = get_codec("generative")
    sopts = {**opts, "tune": 0}
    trial = codec.trial_encoder(img, **sopts)

    def enc(q: float) -> bytes:
        return api._encode_once(codec, img, q, None, None, 8, sopts, trial)[0]

    best = enc(0.0)
    if len(best) * 8 / px > target:
        return api.encode_array(img, "generative", 0.0, **opts), 0.0, True
    lo, hi, q_best = 0.0, 100.0, 0.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        d = enc(mid)
        if len(d) * 8 / px <= target:
            best, q_best, lo = d, mid, mid
        else:
            hi = mid
    final = api.encode_array(img, "generative", q_best, **opts)
    assert len(final) == len(best), "the strength choice changed the file size"
    return final, q_best, False


def memo_runner(r):
    """``r`` with its encoder memoised per quality, for ONE image (make one per image): the
    targets of an image share their first bisection trials."""
    import dataclasses

    memo: dict = {}

    def enc(img: np.ndarray, q: float | None) -> bytes:
        if q not in memo:
            memo[q] = r.encode(img, q)
        return memo[q]

    return dataclasses.replace(r, encode=enc)


def run_generative(name: str, img: np.ndarray, target: float, opts: dict, save: Path,
                   runners: dict) -> tuple[list[dict], dict]:
    """Rows for one image and target, and the reconstructions (for the grid)."""
    data, q, missed = gen_at(img, target, opts)
    tag = f"{name}_{target:g}"
    (save / f"{tag}.gcz").write_bytes(data)
    rows, recs = [], {}
    for dec in ("gan", "mse"):
        rec = api.decode(data, decoder=dec).pixels
        recs[f"generative-{dec}"] = rec
        rows.append({"image": name, "target": target, "codec": f"generative --decoder {dec}",
                     "quality": round(q, 2), "missed": missed, "md5": _md5(rec),
                     **scores(img, rec, len(data))})
    gen_bpp = rows[0]["bpp"]
    for b in BASELINES:
        r = runners[b]
        bq, bmissed = find_quality_for_bpp(r, img, gen_bpp, steps=7)
        d = r.encode(img, bq)
        rec = r.decode(d)
        recs[b] = rec
        rows.append({"image": name, "target": target, "codec": b, "quality": round(bq, 2),
                     "missed": bmissed, **scores(img, rec, len(d))})
    return rows, recs


def run_ablative(name: str, img: np.ndarray, save: Path, runners: dict,
                 block_qualities: tuple[int, ...], opts: dict) -> tuple[list[dict], dict]:
    rows, recs = [], {}
    jpeg = runners["jpeg"]
    px = img.shape[0] * img.shape[1]
    ref_bpp = None
    for q in (1, 5, 25, 50):
        d = jpeg.encode(img, q)
        rec = jpeg.decode(d)
        rows.append({"image": name, "codec": f"JPEG quality {q}", **scores(img, rec, len(d))})
        if q == 5:
            ref_bpp, recs["jpeg5"] = len(d) * 8 / px, rec
    for bq in block_qualities:
        lo, hi, best, qb = 0.0, 100.0, None, 0.0
        for _ in range(7):
            mid = (lo + hi) / 2
            d = api.encode_array(img, "ablative", mid, block_quality=bq, **opts)
            if len(d) * 8 / px <= ref_bpp:
                best, qb, lo = d, mid, mid
            else:
                hi = mid
        missed = best is None
        if best is None:
            best = api.encode_array(img, "ablative", 0.0, block_quality=bq, **opts)
        (save / f"{name}_abl{bq}.gcz").write_bytes(best)
        rec = api.decode(best).pixels
        recs[f"ablative{bq}"] = rec
        rows.append({"image": name, "codec": f"ablative, block quality {bq}", "kept_pct": round(qb, 2),
                     "missed": missed, "md5": _md5(rec), **scores(img, rec, len(best))})
    return rows, recs


def labelled(recs: dict, rows: list[dict], cut) -> list[tuple[str, np.ndarray]]:
    """Grid cells "codec bpp" for one image's reconstructions."""
    def key(codec: str) -> str:
        return codec.replace(" --decoder ", "-")

    bpps = {key(r["codec"]): r["bpp"] for r in rows}
    return [(f"{k} {bpps.get(k, float('nan')):.3f}", cut(v)) for k, v in recs.items()]


def _mean(rows: list[dict], key: str) -> float:
    v = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(v)) if v else float("nan")


def table(rows: list[dict], group: str) -> str:
    out = ["| codec | images | bpp | PSNR dB | MS-SSIM | SSIMULACRA2 | files larger than asked |",
           "|---|---|---|---|---|---|---|"]
    names = list(dict.fromkeys(r["codec"] for r in rows))
    for n in names:
        rs = [r for r in rows if r["codec"] == n]
        out.append(f"| {n} | {len(rs)} | {_mean(rs, 'bpp'):.3f} | {_mean(rs, 'psnr'):.2f} | "
                   f"{_mean(rs, 'ms_ssim'):.4f} | {_mean(rs, 'ssimulacra2'):.2f} | "
                   f"{sum(bool(r.get('missed')) for r in rs)} |")
    return f"**{group}**\n\n" + "\n".join(out)


def pairwise(rows: list[dict]) -> str:
    """Per image SSIMULACRA2 of ``--decoder gan`` against the MSE decoder and each baseline."""
    by = {(r["image"], r["codec"]): r for r in rows}
    gan = [r for r in rows if r["codec"] == "generative --decoder gan"]
    out = []
    for other in ["generative --decoder mse", *BASELINES]:
        d = [g["ssimulacra2"] - by[(g["image"], other)]["ssimulacra2"] for g in gan
             if (g["image"], other) in by]
        if d:
            out.append(f"{other.replace('generative --decoder ', '')} on {sum(x > 0 for x in d)}"
                       f" of {len(d)} (mean {np.mean(d):+.2f})")
    return "Per image, SSIMULACRA2 of `--decoder gan` higher than: " + "; ".join(out) + "."


def ablative_table(rows: list[dict]) -> str:
    out = ["| method | images | bpp | SSIM | PSNR dB | SSIMULACRA2 | seed 004's SSIM |",
           "|---|---|---|---|---|---|---|"]
    seed = {"JPEG quality 1": "0.438", "JPEG quality 5": "0.555", "JPEG quality 25": "0.797",
            "JPEG quality 50": "0.864"}
    for n in dict.fromkeys(r["codec"] for r in rows):
        rs = [r for r in rows if r["codec"] == n]
        out.append(f"| {n} | {len(rs)} | {_mean(rs, 'bpp'):.3f} | {_mean(rs, 'ssim'):.3f} | "
                   f"{_mean(rs, 'psnr'):.2f} | {_mean(rs, 'ssimulacra2'):.2f} | "
                   f"{seed.get(n, '0.403 (best: B+R sampling + content loss)' if 'ablative' in n else '')} |")
    return "\n".join(out)


def grid(cells: list[tuple[str, list[tuple[str, np.ndarray]]]], path: Path, size: int = 160) -> None:
    """Rows of labelled crops into one PNG (labels drawn with Pillow's default font)."""
    from PIL import Image, ImageDraw

    cols = max(len(c) for _, c in cells)
    head = 14
    canvas = Image.new("RGB", (cols * size, len(cells) * (size + head)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (title, row) in enumerate(cells):
        for j, (label, crop) in enumerate(row):
            y = i * (size + head)
            im = Image.fromarray(crop)
            if crop.shape[0] * 2 <= size:  # small images (faces): nearest-neighbour zoom
                f = size // crop.shape[0]
                im = im.resize((crop.shape[1] * f, crop.shape[0] * f), Image.NEAREST)
            canvas.paste(im, (j * size, y + head))
            draw.text((j * size + 2, y + 1), f"{title} {label}" if j == 0 else label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)


def _saved_decodes(data: bytes, img: np.ndarray, rs: list[dict], runners: dict) -> dict:
    """A saved file decoded both ways, plus each recorded baseline re-coded at its quality."""
    recs = {f"generative-{d}": api.decode(data, decoder=d).pixels for d in ("gan", "mse")}
    for r in rs:
        if r["codec"] in runners:
            b = runners[r["codec"]]
            recs[r["codec"]] = b.decode(b.encode(img, r["quality"]))
    return recs


def cells_from_saved(save: Path, rows: list[dict], kodak: list[Path], runners: dict) -> list:
    """Grid rows of GRID_IMAGES rebuilt from the saved .gcz files and the recorded baseline
    qualities (no rate search): lets an interrupted run draw its grid afterwards."""
    from PIL import Image

    cells = []
    for p in kodak:
        if p.stem not in GRID_IMAGES:
            continue
        img = np.asarray(Image.open(p).convert("RGB"))
        y, x = crop_of(img)
        cut = lambda a_: a_[y:y + 160, x:x + 160]  # noqa: E731
        for t in sorted({r["target"] for r in rows if r["image"] == p.stem and "target" in r}):
            f = save / f"{p.stem}_{t:g}.gcz"
            rs = [r for r in rows if r["image"] == p.stem and r.get("target") == t]
            if not f.exists() or not rs:
                continue
            recs = _saved_decodes(f.read_bytes(), img, rs, runners)
            cells.append((f"{p.stem}@{t:g}", [("original", cut(img))] + labelled(recs, rs, cut)))
    return cells


def face_cells_from_saved(save: Path, rows: list[dict], faces: list[Path], runners: dict) -> list:
    """Grid rows of the first faces, from their saved files and recorded baseline qualities."""
    from PIL import Image

    cells = []
    for f in faces:
        rs = [r for r in rows if r["image"] == f.stem]
        gz = save / f"{f.stem}_{rs[0]['target']:g}.gcz" if rs else None
        if gz is None or not gz.exists():
            continue
        img = np.asarray(Image.open(f).convert("RGB"))
        recs = _saved_decodes(gz.read_bytes(), img, rs, runners)
        cells.append((f"face {f.stem}", [("original", img)] + labelled(recs, rs, lambda v: v)))
    return cells


def ablative_cells_from_saved(save: Path, rows: list[dict], kodak: list[Path], runners: dict,
                              bqs: tuple[int, ...]) -> list:
    """Ablative grid rows of GRID_IMAGES: original, JPEG quality 5, the saved ablative files."""
    from PIL import Image

    cells = []
    for p in kodak:
        if p.stem not in GRID_IMAGES or not any(r["image"] == p.stem for r in rows):
            continue
        img = np.asarray(Image.open(p).convert("RGB"))
        y, x = crop_of(img)
        cut = lambda a_: a_[y:y + 160, x:x + 160]  # noqa: E731
        jpeg = runners["jpeg"]
        row = [("original", cut(img)), ("jpeg5", cut(jpeg.decode(jpeg.encode(img, 5))))]
        for bq in bqs:
            f = save / f"{p.stem}_abl{bq}.gcz"
            if f.exists():
                row.append((f"ablative{bq}", cut(api.decode(f.read_bytes()).pixels)))
        cells.append((p.stem, row))
    return cells


def crop_of(img: np.ndarray, size: int = 160) -> tuple[int, int]:
    """Top-left of the crop with the most edges (where invented texture shows)."""
    from ..codecs.generative import edge_density

    d = edge_density(img, 32)
    k = size // 32
    best, at = -1.0, (0, 0)
    for y in range(0, d.shape[0] - k + 1):
        for x in range(0, d.shape[1] - k + 1):
            s = d[y:y + k, x:x + k].mean()
            if s > best:
                best, at = s, (y * 32, x * 32)
    return at


def verify(save: Path, rows: list[dict], names: list[str]) -> tuple[int, int]:
    """Decode the saved files of ``names`` in another process; count identical decodes."""
    want = {}
    for r in rows:
        if r["image"] in names and "md5" in r:
            if r["codec"].startswith("generative"):
                want[(f"{r['image']}_{r['target']:g}.gcz", r["codec"].split()[-1])] = r["md5"]
            else:
                want[(f"{r['image']}_abl{r['codec'].split()[-1]}.gcz", "")] = r["md5"]
    code = ("import sys, json, hashlib, numpy as np; from gancomp import api\n"
            "out = {}\n"
            "for f, dec in json.loads(sys.argv[1]):\n"
            "    d = open(f, 'rb').read()\n"
            "    p = api.decode(d, decoder=dec).pixels if dec else api.decode(d).pixels\n"
            "    out[f + '|' + dec] = hashlib.md5(np.ascontiguousarray(p).tobytes()).hexdigest()\n"
            "print(json.dumps(out))")
    jobs = [[str(save / f), dec] for f, dec in want]
    env = dict(os.environ, OMP_NUM_THREADS="2", ATEN_CPU_CAPABILITY="default",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code, json.dumps(jobs)], capture_output=True,
                         text=True, env=env, check=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    same = sum(got[str(save / f) + "|" + dec] == m for (f, dec), m in want.items())
    return same, len(want)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.generative")
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--faces", help="face folder (held out: last 500 sorted ids)")
    ap.add_argument("--count", type=int, default=24, help="Kodak images (first N sorted)")
    ap.add_argument("--images", help="comma list of Kodak names instead (e.g. kodim05,kodim23)")
    ap.add_argument("--face-count", type=int, default=200)
    ap.add_argument("--targets", default="0.1,0.2")
    ap.add_argument("--face-target", type=float, default=0.25)
    ap.add_argument("--model", help="generative model id for Kodak (default: installed default)")
    ap.add_argument("--face-model", help="generative model id for faces")
    ap.add_argument("--abl-model", help="ablative model id")
    ap.add_argument("--block-qualities", default="15,30,50")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: kodak,faces,ablative")
    ap.add_argument("--save", default="docs/i15_bench", help="cache: rows.jsonl (one line per "
                    "row, reruns skip the points there) and the .gcz files")
    ap.add_argument("--verify", type=int, default=2, help="cross-process check of N images' files")
    ap.add_argument("--section", default="i15-generative")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-grid", action="store_true", help="do not redraw the grids (they are "
                    "drawn from SAVE's files and rows)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    save = Path(a.save)
    save.mkdir(parents=True, exist_ok=True)
    rows_path = save / "rows.jsonl"
    rows = [json.loads(x) for x in rows_path.read_text().splitlines()] if rows_path.exists() else []
    done = {(r["part"], r["image"], r.get("target")) for r in rows}
    runners = {r.name: r for r in resolve_codecs(BASELINES)}
    skip = set(filter(None, a.skip.split(",")))
    gopts = {"model": a.model} if a.model else {}
    aopts = {"model": a.abl_model} if a.abl_model else {}
    kodak = sorted(p for p in Path(a.kodak).iterdir() if p.suffix.lower() == ".png")[:a.count]
    if a.images:
        kodak = [Path(a.kodak) / f"{n}.png" for n in a.images.split(",")]
    targets = [float(t) for t in a.targets.split(",")]
    bqs = tuple(int(b) for b in a.block_qualities.split(","))
    import time

    def record(part: str, name: str, new: list[dict], cpu: float, target=None) -> None:
        """Append one point's rows (with the CPU seconds the point took) to the cache."""
        with open(rows_path, "a") as f:
            for r in new:
                r.update(part=part, point_cpu_s=round(cpu, 2))
                if target is not None:
                    r["target"] = target
                f.write(json.dumps(r) + "\n")
        rows.extend(new)
        done.add((part, name, target))

    def load(p: Path) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.open(p).convert("RGB"))

    if "kodak" not in skip:
        for p in kodak:
            img, mr = load(p), {k: memo_runner(v) for k, v in runners.items()}
            for t in targets:
                if ("kodak", p.stem, t) in done:
                    continue
                c0 = time.process_time()
                rs, _ = run_generative(p.stem, img, t, gopts, save, mr)
                record("kodak", p.stem, rs, time.process_time() - c0, t)
                print(f"{p.stem}@{t:g}: {time.process_time() - c0:.0f} CPU-s", flush=True)
    if "ablative" not in skip:
        for p in kodak:
            if ("ablative", p.stem, None) in done:
                continue
            c0 = time.process_time()
            rs, _ = run_ablative(p.stem, load(p), save, runners, bqs, aopts)
            record("ablative", p.stem, rs, time.process_time() - c0)
            print(f"{p.stem} ablative: {time.process_time() - c0:.0f} CPU-s", flush=True)
    held: list[Path] = []
    if a.faces:
        files = sorted(p for p in Path(a.faces).iterdir() if p.suffix.lower() in (".png", ".jpg"))
        held = files[-500:][:a.face_count]
    fopts = {"model": a.face_model} if a.face_model else gopts
    if held and "faces" not in skip:
        for f in held:
            if ("faces", f.stem, a.face_target) in done:
                continue
            c0 = time.process_time()
            img = load(f)
            rs, _ = run_generative(f.stem, img, a.face_target, fopts, save,
                                   {k: memo_runner(v) for k, v in runners.items()})
            record("faces", f.stem, rs, time.process_time() - c0, a.face_target)
        print("faces done", flush=True)

    names_k = {p.stem for p in kodak}
    names_f = {f.stem for f in held}
    kodak_rows = [r for r in rows if r["part"] == "kodak" and r["image"] in names_k
                  and r["target"] in targets]
    face_rows = [r for r in rows if r["part"] == "faces" and r["image"] in names_f]
    abl_rows = [r for r in rows if r["part"] == "ablative" and r["image"] in names_k]
    names = [p.stem for p in kodak][:a.verify]
    same, total = verify(save, rows, names) if a.verify and total_files(rows, names) else (0, 0)
    stem = a.section.replace("-", "_")
    if not a.no_grid:
        cells = cells_from_saved(save, kodak_rows, kodak, runners)
        cells += face_cells_from_saved(save, face_rows, held[:4], runners)
        if cells:
            grid(cells, DOCS / f"{stem}_grid.png")
        abl_cells = ablative_cells_from_saved(save, abl_rows, kodak, runners, bqs)
        if abl_cells:
            grid(abl_cells, DOCS / f"{stem}_ablative_grid.png")
    cmd = "python -m gancomp.benchmarks.generative " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    md = [f"## Generative and ablative compression (issue 15)\n\nCommand: `{cmd}`\n",
          models_line(a),
          "How it is measured: `generative` is bisected over -q in 6 halvings (through the codec's "
          "trial encoder, strength search off; the chosen quality is then encoded as the CLI would, "
          "the strength search on), so its files land up to ~10 % under the target; each baseline "
          "takes its highest quality whose file is no larger than the generative file (or its "
          "smallest file: counted in the last column). For a wavelet2-based model (version 3) "
          "`--decoder mse` is the exact wavelet2 decode of the file and `--decoder gan` adds the "
          "generator's residual times a strength the encoder picked per image by SSIMULACRA2 "
          "against the original (the GAN decoder is tuned per image toward the metric it is "
          "scored with). Rows are cached per image and target in `" + str(save) + "/rows.jsonl` "
          "with the .gcz files; a rerun measures only what is missing."]
    carried = sorted({r["carried_from"] for r in kodak_rows + face_rows + abl_rows
                      if r.get("carried_from")})
    for c in carried:
        parts = sorted({r["part"] for r in kodak_rows + face_rows + abl_rows
                        if r.get("carried_from") == c})
        md.append(f"Rows of {', '.join(parts)} carried over from {c}.")
    for t in targets:
        rs = [r for r in kodak_rows if r["target"] == t]
        if rs:
            md.append(table(rs, f"Kodak, target {t:g} bpp ({len({r['image'] for r in rs})} images)"))
            md.append(pairwise(rs))
    if face_rows:
        md.append(table(face_rows, f"Held-out faces, target {a.face_target:g} bpp"))
        md.append(pairwise(face_rows))
    if abl_rows:
        md.append("**Ablative (seed 004) on Kodak**: JPEG at the seed's qualities and ablative "
                  "at the bpp of JPEG quality 5, per image\n\n" + ablative_table(abl_rows))
    timed = []
    for part, rs in (("Kodak", kodak_rows), ("faces", face_rows), ("ablative", abl_rows)):
        pts = {(r["image"], r.get("target")): r["point_cpu_s"] for r in rs if "point_cpu_s" in r}
        allp = {(r["image"], r.get("target")) for r in rs}
        if pts:
            timed.append(f"{part} {sum(pts.values()):.0f} s over {len(pts)} of {len(allp)} "
                         f"points ({sum(pts.values()) / len(pts):.0f} s per point)")
    if timed:
        md.append("CPU seconds (`time.process_time` of the benchmark process per image and target, "
                  "one torch thread; rate searches, encodes, decodes and scoring of all codecs; "
                  "only points measured by this version of the command are timed, carried rows "
                  "are not): " + "; ".join(timed) + ".")
    if total:
        md.append(f"Cross-process check: {same}/{total} files of {len(names)} images decode to "
                  f"the scored pixels with OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=default.")
    md.append(f"Grids: `docs/{stem}_grid.png` (the 160 px crop with the most edges; columns "
              f"labelled with bpp), `docs/{stem}_ablative_grid.png` (original, JPEG quality 5, "
              f"ablative per block quality).")
    text = "\n\n".join(md)
    (save / "section.md").write_text(text)
    print(text)
    if not a.no_write:
        from ..report import write_section

        update_cards(a, kodak_rows, face_rows, abl_rows, targets, cmd)
        write_section(DOCS / "BENCHMARKS.md", a.section, text)


def summary(rows: list[dict]) -> dict:
    """codec -> mean bpp / PSNR / MS-SSIM / SSIMULACRA2 / SSIM (for model cards)."""
    out = {}
    for n in dict.fromkeys(r["codec"] for r in rows):
        rs = [r for r in rows if r["codec"] == n]
        out[n] = {"images": len(rs), **{k: round(_mean(rs, k), 4) for k in
                                        ("bpp", "psnr", "ms_ssim", "ssimulacra2", "ssim")}}
    return out


def update_cards(a, kodak_rows, face_rows, abl_rows, targets, cmd: str) -> None:
    """Write the measured results into the model cards (the weights and their hash stay)."""
    from ..weights import default_for, find

    def card_path(mid, codec):
        c = find(mid) if mid else default_for(codec)
        return None if c is None else c.path.with_suffix(".json")

    jobs = [(card_path(a.model, "generative"), {f"kodak_{t:g}bpp": summary(
        [r for r in kodak_rows if r["target"] == t]) for t in targets}),
            (card_path(a.face_model, "generative") if a.face_model else None,
             {f"faces_{a.face_target:g}bpp": summary(face_rows)}),
            (card_path(a.abl_model, "ablative"), {"kodak_at_jpeg_q5_bpp": summary(abl_rows)})]
    for path, res in jobs:
        if path is None or not any(res.values()):
            continue
        card = json.loads(path.read_text())
        card["results"] = dict(card.get("results") or {}, benchmark=cmd, **res)
        path.write_text(json.dumps(card, indent=2) + "\n")


def total_files(rows: list[dict], names: list[str]) -> int:
    return sum(1 for r in rows if r["image"] in names and "md5" in r)


def models_line(a) -> str:
    from ..weights import default_for, find

    out = []
    for label, mid, codec in (("generative (Kodak)", a.model, "generative"),
                              ("generative (faces)", a.face_model, "generative"),
                              ("ablative", a.abl_model, "ablative")):
        if label.endswith("(faces)") and (not a.faces or "faces" in a.skip):
            continue
        card = find(mid) if mid else default_for(codec)
        if card is not None:
            out.append(f"{label}: `{card.id}` ({card.sha256[:12]}…)")
    return "Models: " + "; ".join(out) + "."


if __name__ == "__main__":
    main()
