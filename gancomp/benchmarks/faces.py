"""Faces benchmark (seed 000's table): gan-inversion against K-means, JPEG, WebP and wavelets
on the held-out faces (the last 500 sorted ids of a 64x64 face folder, never trained on).

    python -m gancomp.benchmarks.faces /work/shared/data/faces

Every gan-inversion row is scored on the decode of the .gcz file it wrote (api.decode), bpp
counts the whole file. GAN latents are optimized in batches (Adam is per-coordinate and the
losses are per image, so each face is optimized as if alone); the per-face encode time is
measured separately with the codec on single faces. Also writes the image grid PNG and the
compressive sensing table (section ``faces-cs``).
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics
from ..baselines import pil_decode

DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass
class Row:
    name: str
    mse: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    bpp: list[float] = field(default_factory=list)
    recs: list[np.ndarray] = field(default_factory=list)
    note: str = ""

    def add(self, orig: np.ndarray, rec: np.ndarray, nbytes: int | None) -> None:
        self.mse.append(metrics.mse(orig, rec))
        self.ssim.append(metrics.ssim(orig, rec))
        self.psnr.append(metrics.psnr(orig, rec))
        self.bpp.append(24.0 if nbytes is None else nbytes * 8 / (orig.shape[0] * orig.shape[1]))
        self.recs.append(rec)

    def line(self) -> str:
        n = len(self.mse)
        psnr = np.mean(self.psnr) if np.isfinite(self.psnr).all() else float("inf")
        bpp = float(np.mean(self.bpp))
        return (f"| {self.name} | {np.mean(self.mse):.2f} | {np.mean(self.ssim):.3f} | "
                f"{psnr:.2f} | {bpp:.3f} | {24 / bpp:.1f} | {n} | {self.note} |")


def _pil_bytes(img: np.ndarray, fmt: str, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, quality=quality)
    return buf.getvalue()


def _smallest_at_least(img: np.ndarray, fmt: str, nbytes: int) -> bytes:
    """The lowest-quality file of ``fmt`` whose size is >= nbytes (else the largest, q=100)."""
    lo_data = _pil_bytes(img, fmt, 0 if fmt == "WEBP" else 1)
    if len(lo_data) >= nbytes:
        return lo_data
    for q in range(2, 101):
        d = _pil_bytes(img, fmt, q)
        if len(d) >= nbytes:
            return d
    return d


def _classical_at_most(img: np.ndarray, name: str, nbytes: int) -> bytes:
    """The highest-quality file of classical codec ``name`` (gancomp.baselines) no larger
    than nbytes; its lowest quality (0) when even that is larger."""
    from .. import baselines

    c = baselines.get(name)
    lo, hi = 0, 100
    best = c.encode(img, 0)
    while lo <= hi:
        mid = (lo + hi) // 2
        d = c.encode(img, mid)
        if len(d) <= nbytes:
            best, lo = d, mid + 1
        else:
            hi = mid - 1
    return best


def _largest_at_most(img: np.ndarray, fmt: str, nbytes: int) -> bytes:
    """The highest-quality file of ``fmt`` no larger than nbytes (its lowest quality when
    even that is larger: the lowest rate it reaches)."""
    lo, hi = 0, 100
    best = _pil_bytes(img, fmt, 0 if fmt == "WEBP" else 1)
    while lo <= hi:
        mid = (lo + hi) // 2
        d = _pil_bytes(img, fmt, max(mid, 0 if fmt == "WEBP" else 1))
        if len(d) <= nbytes:
            best, lo = d, mid + 1
        else:
            hi = mid - 1
    return best


class _Precomputed:
    """Hands a precomputed Encoded to api's own container writer (the exact CLI bytes)."""

    def __init__(self, codec, enc) -> None:
        self.name, self.codec_id, self.version = codec.name, codec.codec_id, codec.version
        self.channels, self.lossless, self._enc = codec.channels, codec.lossless, enc
        self.file_defaults = codec.file_defaults

    def encode(self, image, quality=None, **options):
        return self._enc


def gan_files(faces: np.ndarray, batch: int = 25, **opts) -> list[bytes]:
    """.gcz bytes of each face with gan-inversion (latents optimized in batches; v2 models
    stop each face on its own, as if encoded alone)."""
    from .. import api, inversion
    from ..codecs import get_codec
    from ..codecs.ganinv import DEFAULTS, V2_ENCODE, pack, pack_v2

    codec = get_codec("gan-inversion")
    model = inversion.load_model(opts.pop("model", None))
    if model.v2 and "ratio" not in opts:
        level = opts.pop("level", 2)
        o = dict(V2_ENCODE, **opts)
        out = []
        for i in range(0, len(faces), batch):
            res = inversion.invert_v2(model, faces[i:i + batch], level=level, **o)
            for face, sym in zip(faces[i:i + batch], res.symbols):
                enc = pack_v2(model, sym, level, False)
                out.append(api._encode_once(_Precomputed(codec, enc), face, None, None, None,
                                            8, {})[0])
        return out
    o = dict(DEFAULTS, **opts)
    ratio, seed = o.pop("ratio", None), o.pop("seed", 0)
    d = inversion.ganz_dim(ratio) if ratio else 0
    out = []
    for i in range(0, len(faces), batch):
        res = inversion.invert(model, faces[i:i + batch], ratio=ratio, seed=seed, **o)
        for face, sym in zip(faces[i:i + batch], res.symbols):
            enc = pack(model, sym, o["bits"], d, seed, False)
            data, _ = api._encode_once(_Precomputed(codec, enc), face, None, None, None, 8, {})
            out.append(data)
    return out


def _time_encode(faces: np.ndarray, **opts) -> float:
    from .. import api

    times = []
    for f in faces:
        t = time.perf_counter()
        api.encode_array(f, "gan-inversion", **opts)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _grid(path: Path, faces, rows: list[tuple[str, list[np.ndarray]]]) -> None:
    from PIL import Image, ImageDraw

    n, s, lab = len(faces), 128, 150
    img = Image.new("RGB", (lab + n * s, len(rows) * s), "white")
    draw = ImageDraw.Draw(img)
    for r, (label, ims) in enumerate(rows):
        for i, a in enumerate(ims):
            img.paste(Image.fromarray(a).resize((s, s), Image.NEAREST), (lab + i * s, r * s))
        for j, part in enumerate(label.split("\n")):
            draw.text((4, r * s + 40 + 14 * j), part, fill="black")
    img.save(path)


def run_cs(faces: np.ndarray, model, ratios=(0.08, 0.2)) -> str:
    """Compressive sensing table: generator prior vs db4 wavelet sparsity (FISTA)."""
    from .. import cs

    lines = ["| M/N | M | generator prior PSNR (dB) | wavelet db4 + FISTA PSNR (dB) | faces |",
             "|---|---|---|---|---|"]
    for r in ratios:
        m = int(round(r * faces[0].size))
        a = cs.gaussian_matrix(m, faces[0].size, seed=0)
        pg, pw = [], []
        for f in faces:
            y = cs.measure(f, a)
            pg.append(metrics.psnr(f, cs.recover_generator(y, a, model)))
            pw.append(metrics.psnr(f, cs.recover_wavelet(y, a, f.shape)))
        lines.append(f"| {r} | {m} | {np.mean(pg):.2f} | {np.mean(pw):.2f} | {len(faces)} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def verify(folder: Path) -> None:
    """Decode saved .gcz files in this process and compare with the scored pixels."""
    from .. import api

    scored = np.load(folder / "scored.npy")
    files = sorted(folder.glob("*.gcz"))
    diffs = [int(np.abs(api.decode_array(f.read_bytes()).astype(int) - s.astype(int)).max())
             for f, s in zip(files, scored)]
    same = sum(d == 0 for d in diffs)
    print(f"{len(files)} files: {same} decode to exactly the scored pixels, "
          f"max difference {max(diffs)} levels, {sum(d > 1 for d in diffs)} differ by > 1")


def main(argv: list[str] | None = None) -> None:
    import torch

    from .. import api, report
    from ..train.ganinv import load_u8, split

    ap = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.faces", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="face folder (64x64); the last 500 are scored; "
                    "with --verify, a folder written by --save")
    ap.add_argument("--verify", action="store_true",
                    help="decode DATA/*.gcz and compare with the pixels the benchmark scored")
    ap.add_argument("--count", type=int, default=500, help="faces for the default variant")
    ap.add_argument("--variant-count", type=int, default=100,
                    help="faces for the other gan-inversion variants (first N of --count)")
    ap.add_argument("--cs-count", type=int, default=3, help="faces for compressive sensing")
    ap.add_argument("--time-count", type=int, default=10, help="faces timed one by one")
    ap.add_argument("--model", default=None, help="gan-inversion model id (default model)")
    ap.add_argument("--out", type=Path, default=DOCS / "BENCHMARKS.md")
    ap.add_argument("--grid", type=Path, default=DOCS / "faces_grid.png")
    ap.add_argument("--save", type=Path, default=None, help="keep the default .gcz files here")
    ap.add_argument("--section", default="faces", help="section of --out to (re)write")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.verify:
        verify(args.data)
        return
    cmd = "python -m gancomp.benchmarks.faces " + " ".join(shlex.quote(a) for a in
                                                          (argv if argv is not None else sys.argv[1:]))
    _, held = split(args.data)
    faces = load_u8(held[: args.count])
    nv = min(args.variant_count, len(faces))
    mopt = {"model": args.model} if args.model else {}
    t_start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t_start:7.1f} s] {msg}", file=sys.stderr, flush=True)

    # gan-inversion default (combined loss), on all faces
    ours = Row("GAN reversal (combined), ours default")
    files = gan_files(faces, **mopt)
    for f, data in zip(faces, files):
        ours.add(f, api.decode_array(data), len(data))
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(files):
            (args.save / f"{i:03d}.gcz").write_bytes(data)
        np.save(args.save / "scored.npy", np.stack(ours.recs))
    log(ours.line())
    rows = [Row("Uncompressed (raw RGB)")]
    for f in faces:
        rows[0].add(f, f, None)
    rows += [Row("K-means (4 colours)"), Row("JPEG 10%"), Row("JPEG 1%"),
             Row("WebP at matched bpp"), Row("wavelet db4 at matched bpp"),
             Row("wavelet db4 at matched ratio")]
    from .. import baselines
    from ..codecs.ganinv import DEFAULTS, V2_ENCODE
    from ..inversion import load_model

    model = load_model(args.model)
    dof_ratio = 64 * 64 * 3 / model.zdim
    rows[-1].note = f"R = {dof_ratio:.0f} (as many coefficients as latents)"
    rows[4].note = "largest WebP file <= ours; WebP q=0 where none is"
    rows[5].note = "--target-bpp = ours"
    for f, data in zip(faces, files):
        km = api.encode_array(f, "kmeans", colors=4)
        rows[1].add(f, api.decode_array(km), len(km))
        for row, q in ((rows[2], 10), (rows[3], 1)):
            j = _pil_bytes(f, "JPEG", q)
            row.add(f, pil_decode(j), len(j))
        w = _largest_at_most(f, "WEBP", len(data))
        rows[4].add(f, pil_decode(w), len(w))
        try:
            wv = api.encode_array(f, "wavelet", target_bpp=len(data) * 8 / 4096)
        except Exception:  # noqa: BLE001  # the wavelet codec cannot go that low
            wv = api.encode_array(f, "wavelet", quality=5)
        rows[5].add(f, api.decode_array(wv), len(wv))
        wr = api.encode_array(f, "wavelet", ratio=dof_ratio)
        rows[6].add(f, api.decode_array(wr), len(wr))
    log("classical rows done")
    # WebP, AVIF and HEIC at their lowest settings and at matched bpp
    low_rows = []
    for name, label in (("webp", "WebP"), ("avif", "AVIF"), ("heic", "HEIC")):
        c = baselines.get(name)
        lo_row, m_row = Row(f"{label} quality 0 (its lowest rate)"), Row(f"{label} at matched bpp")
        m_row.note = f"largest {label} file <= ours; quality 0 where none is"
        for f, data in zip(faces, files):
            d0 = c.encode(f, 0)
            lo_row.add(f, c.decode(d0), len(d0))
            dm = _classical_at_most(f, name, len(data))
            m_row.add(f, c.decode(dm), len(dm))
        low_rows += [lo_row, m_row]
        log(lo_row.line())
        log(m_row.line())
    sub = faces[:nv]
    if model.v2:
        variants = [("GAN encoder only (round(E(x)), 0 steps)", {"steps": 0}),
                    ("GAN reversal (MSE)", {"loss": "mse"}),
                    ("GAN reversal, level 1 (coarser)", {"level": 1}),
                    ("GAN reversal, level 3 (finer)", {"level": 3}),
                    ("GAN reversal, 80 steps max", {"steps": 80}),
                    ("v1 model ganinv-faces64 (default settings)", {"model": "ganinv-faces64"})]
        variants += [(f"GANZ R={r} (combined)", {"ratio": r}) for r in (50,)]
    else:
        variants = [("GAN reversal (MSE)", {"loss": "mse"}),
                    ("GAN encoder only (E(x), 0 steps)", {"steps": 0, "restarts": 1})]
        variants += [(f"GANZ R={r} (combined)", {"ratio": r}) for r in (10, 50, 200)]
        variants += [(f"GAN reversal (combined), {b}-bit latents", {"bits": b}) for b in (4, 6)]
    gan_rows = []
    for name, opts in variants:
        row = Row(name)
        for f, data in zip(sub, gan_files(sub, **{**mopt, **opts})):
            row.add(f, api.decode_array(data), len(data))
        gan_rows.append(row)
        log(row.line())
    t_def = _time_encode(faces[: args.time_count], **mopt)
    t_mse = _time_encode(faces[: args.time_count], loss="mse", **mopt)
    try:
        load = "load average %.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        load = "load average unknown"
    head = ("| Scheme | MSE | SSIM | PSNR (dB) | bpp | CR | faces | note |\n"
            "|---|---|---|---|---|---|---|---|")
    body = "\n".join(r.line() for r in rows[:4] + [ours] + rows[4:] + low_rows + gan_rows)
    if model.v2:
        dflt = (f"Defaults: loss combined, level 2 (quantizer step {model.levels[2]:g}), at most "
                f"{V2_ENCODE['steps']} Adam steps (lr {V2_ENCODE['lr']:g} -> "
                f"{V2_ENCODE['lr_end']:g}), each face stopping after {V2_ENCODE['patience']} "
                f"steps without improvement; .gcz 1.1 container.")
    else:
        dflt = (f"Defaults: loss {DEFAULTS['loss']}, {DEFAULTS['bits']}-bit latents, "
                f"{DEFAULTS['steps']} Adam steps, {DEFAULTS['restarts']} restarts.")
    md = (f"Held-out faces: the last {len(held)} of {args.data.name} (sorted ids), "
          f"{len(faces)} scored for the default and classical rows, first {nv} for the other "
          f"GAN variants. Model `{model.id}` ({model.card.get('steps')} training steps). "
          f"{dflt}\n\n"
          f"Command: `{cmd}`\n\n{head}\n{body}\n\n"
          f"Encode time per face (median of {args.time_count}, library call, 1 thread, "
          f"model loaded, wall clock on this shared machine, {load}): default {t_def:.2f} s, "
          f"MSE loss {t_mse:.2f} s. Idle-core and loaded-core times: "
          f"`python -m gancomp.benchmarks.faces_speed`.\n\n"
          f"Grid: `docs/{args.grid.name}` (original / ours / smallest JPEG with >= our bytes / "
          f"largest WebP with <= our bytes, else WebP q=0, its smallest file).")
    print(head + "\n" + body)
    print(md.splitlines()[-3])
    report.write_section(args.out, args.section, md)
    # grid
    k = min(8, len(faces))
    jp = [pil_decode(_smallest_at_least(f, "JPEG", len(d))) for f, d in zip(faces[:k], files[:k])]
    jb = [len(_smallest_at_least(f, "JPEG", len(d))) * 8 / 4096 for f, d in zip(faces[:k], files[:k])]
    _grid(args.grid, faces[:k], [
        ("original", list(faces[:k])),
        (f"gan-inversion\n{np.mean(ours.bpp[:k]):.3f} bpp\nSSIM {np.mean(ours.ssim[:k]):.3f}",
         ours.recs[:k]),
        (f"JPEG >= our size\n{np.mean(jb):.3f} bpp", jp),
        (f"WebP, largest <= ours\n(else q=0, its lowest)\n{np.mean(rows[4].bpp[:k]):.3f} bpp",
         rows[4].recs[:k])])
    if args.cs_count:
        cs_md = run_cs(faces[: args.cs_count], model)
        report.write_section(args.out, "faces-cs",
                             f"Compressive sensing on {args.cs_count} held-out faces "
                             f"(y = A x, A Gaussian M x 12288).\n\nCommand: `{cmd}`\n\n{cs_md}")
    log("done")


if __name__ == "__main__":
    main()
