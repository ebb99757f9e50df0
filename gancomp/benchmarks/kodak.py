"""The Kodak rate-distortion benchmark: gancomp's RD codecs and every classical codec present,
side by side on the same images in one run, over about 0.1-1.5 bpp.

Writes the ``kodak`` section of docs/BENCHMARKS.md: the RD table, PSNR and MS-SSIM plots,
BD-rates against each classical codec and against the published bmshj2018-hyperprior and
mbt2018-mean curves (CompressAI), median encode/decode seconds per image, the machine and the
exact command. Run it as ``gancomp bench [KODAK_DIR]`` or ``python -m gancomp.benchmarks.kodak``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import GanCompError, InputError

SECTION = "kodak"
# Qualities that put each codec's Kodak average at roughly 0.1-1.5 bpp (found by pilot runs;
# the native settings are in the table). Codecs not listed use their own sweep_qualities().
BENCH_QUALITIES: dict[str, list[float]] = {
    "wavelet2": [2, 12, 22, 32, 42, 52, 60],
    "wavelet": [12, 20, 28, 36, 44, 52, 60],
    "jpeg": [3, 5, 10, 20, 35, 55, 75],
    "webp": [0, 5, 15, 35, 55, 75, 85],
    "avif": [5, 12, 22, 35, 50, 62, 72],
    "heic": [5, 12, 20, 27, 34, 41, 48],
}
# --thin: five of the seven points (a faster run on a busy machine; still enough for BD fits)
THIN_POINTS = {"wavelet2": (0, 1, 2, 4, 5), "webp": (0, 2, 3, 5, 6), "avif": (1, 2, 3, 4, 6)}
THIN_DEFAULT = (0, 1, 3, 5, 6)
NATIVE_SWEEPS = {"jpeg2000": (240, 120, 80, 48, 32, 24, 16),      # compression ratio
                 "jpegxl": (20.0, 12.0, 8.0, 5.0, 3.0, 2.0, 1.4)}  # butteraugli distance
# Learned codecs that are not photo RD codecs (fixed-size domain models) stay out of the
# default set; name them with --codecs to include them anyway.
NOT_PHOTO_CODECS = {"gan-inversion"}
CLASSICAL_ORDER = ("jpeg", "webp", "jpeg2000", "avif", "jpegxl", "heic")
PUBLISHED = ("compressai-bmshj2018-hyperprior_mse_cuda", "compressai-mbt2018-mean_mse_cuda")


@dataclass
class Plan:
    """What the benchmark will run and what it had to leave out."""

    codecs: list[str]
    qualities: dict[str, list[float]]
    missing: dict[str, str] = field(default_factory=dict)


def default_anchors_csv() -> Path | None:
    """The published CompressAI curves: $GANCOMP_ANCHORS, or ../shared/anchors beside the repo."""
    env = os.environ.get("GANCOMP_ANCHORS")
    cands = [Path(env)] if env else []
    root = Path(__file__).resolve().parents[2]
    cands += [root.parent / "shared" / "anchors" / "compressai_kodak_rd.csv",
              root / "shared" / "anchors" / "compressai_kodak_rd.csv"]
    return next((p for p in cands if p.is_file()), None)


def plan_codecs(only: Sequence[str] | None = None) -> Plan:
    """The default codec, every lossy gancomp codec with installed weights, wavelet, and every
    classical codec present (the absent ones are listed with the reason)."""
    from .. import baselines
    from ..codecs import DEFAULT_CODEC, available
    from ..weights import default_for

    if only:
        names = list(dict.fromkeys(only))
    else:
        learned = [n for n, c in available().items()
                   if not c.lossless and n != DEFAULT_CODEC and n not in NOT_PHOTO_CODECS
                   and default_for(n) is not None]
        names = list(dict.fromkeys([DEFAULT_CODEC, *learned, "wavelet"]))
    missing: dict[str, str] = {}
    for c in CLASSICAL_ORDER:
        if only and c not in only:
            continue
        why = baselines.CLASSICAL[c].missing()
        if why:
            missing[c] = why
        elif c not in names:
            names.append(c)
    if only:
        names = [n for n in names if n not in missing]
    quals: dict[str, list[float]] = {}
    for n in names:
        if n in BENCH_QUALITIES:
            quals[n] = [float(q) for q in BENCH_QUALITIES[n]]
        elif n in NATIVE_SWEEPS:
            c = baselines.CLASSICAL[n]
            quals[n] = [round(c.from_native(v), 4) for v in NATIVE_SWEEPS[n]]
    return Plan(names, quals, missing)


def run(kodak_dir: str, *, images: int | None = None, out: str | Path = "docs/BENCHMARKS.md",
        write: bool = True, section: str = SECTION, codecs: Sequence[str] | None = None,
        anchors_csv: str | None = None,
        json_path: str | None = None, command: str | None = None, progress: bool = True,
        echo=print, held_out: bool = False, cache: str | None = None, thin: bool = False) -> str:
    """Run the benchmark, print its tables and (unless ``write`` is False) write the section,
    the plots and optional JSON. Returns the section's markdown."""
    import time

    import numpy as np

    from .. import anchors as anc
    from .. import compare as cmp
    from ..codecs import DEFAULT_CODEC
    from ..report import write_section
    from ..rdplot import plot

    if held_out:  # the project's held-back training photos (never trained or tuned on)
        from ..train.data import is_held_out

        paths = sorted((p for p in Path(kodak_dir).rglob("*")
                        if p.suffix.lower() in cmp.IMAGE_SUFFIXES and is_held_out(p)),
                       key=lambda p: p.name)
        if not paths:
            raise InputError(f"{kodak_dir}: no held-back photos found")
    else:
        paths = cmp.image_paths([kodak_dir])
    if images is not None:
        if images < 1:
            raise InputError(f"--images must be at least 1, got {images}")
        paths = paths[:images]
    out = Path(out)
    if write and not out.resolve().parent.is_dir():
        raise InputError(f"{out.parent}: folder does not exist")
    plan = plan_codecs(codecs)
    if not plan.codecs:
        raise InputError("no codec left to benchmark")
    for c, why in plan.missing.items():
        echo(f"note: {c} skipped: {why}", file=sys.stderr)
    if thin:
        plan.qualities = {k: [v[i] for i in THIN_POINTS.get(k, THIN_DEFAULT) if i < len(v)]
                          for k, v in plan.qualities.items()}
    runners = cmp.resolve_codecs(plan.codecs)
    t0 = time.time()
    result = cmp.run(paths, runners, per_codec={k: v for k, v in plan.qualities.items()
                                                if k in {r.name for r in runners}},
                     progress=progress, log=lambda m: echo(f"bench: {m}", file=sys.stderr),
                     cache=cache)
    wall = time.time() - t0
    curves = cmp.curves(result.summaries)
    published: dict[str, cmp.Curve] = {}
    csv_path = anchors_csv or default_anchors_csv()
    if csv_path:
        published = anc.select(anc.read_csv(csv_path), list(PUBLISHED))
    else:
        echo("note: published anchors CSV not found (set GANCOMP_ANCHORS); "
             "no BD-rate against bmshj2018/mbt2018", file=sys.stderr)
    classical = [c for c in CLASSICAL_ORDER if c in curves]
    allc = dict(curves, **published)
    bd_names = classical + list(published)
    bd_psnr = cmp.bd_matrix(allc, bd_names, "psnr")
    bd_ms = cmp.bd_matrix(allc, bd_names, "ms_ssim")
    native = {r.name: r.native_name for r in runners}
    rd_rows = cmp.table_rows(result.summaries, native)
    bd_hdr = ["codec"] + [f"vs {anc.label(a) if a in published else a}" for a in bd_names]
    times = []
    for r in runners:
        rs = [x for x in result.rows if x.codec == r.name]
        times.append([r.name + (" (default)" if r.name == DEFAULT_CODEC else ""),
                      f"{np.median([x.enc_s for x in rs]):.3f}", f"{np.median([x.dec_s for x in rs]):.3f}",
                      f"{min(x.bpp for x in rs):.3f}-{max(x.bpp for x in rs):.3f}", r.description])
    command = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    stem = "bench_" + section.replace("-", "_").replace(".", "_")
    psnr_png, ms_png = out.parent / f"{stem}_psnr.png", out.parent / f"{stem}_msssim.png"

    what = "Held-back training photos" if held_out else "Kodak"
    md = [f"## {what} rate-distortion ({len(paths)} images)", "",
          f"Command: `{command}`", "",
          f"Machine: {cmp.machine()}.", "",
          f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the run took "
          f"{wall / 60:.1f} min. bpp = whole file size (container header included) x 8 / pixels; "
          "PSNR, SSIM and MS-SSIM on 8-bit RGB per image, averaged over images at each setting "
          "(CompressAI's convention); CR = 24 / bpp; times are medians over images of one "
          "encode and one decode in this process (single run, not warm-up corrected). "
          "gancomp codecs are scored on the pixels decoded from the .gcz bytes they wrote."
          + (" Rows come from the cache file when codec sources (gancomp codecs) or library "
             "versions (classical codecs), image and setting match, so times may come from "
             "earlier runs of this command." if cache else ""), ""]
    if plan.missing:
        md += ["Not run (library missing here): " +
               "; ".join(f"{c} ({why})" for c, why in plan.missing.items()) + ".", ""]
    md += ["### BD-rate, PSNR (negative = fewer bits than the anchor at equal PSNR)", "",
           cmp.markdown_table(bd_hdr, cmp.bd_rows(bd_psnr, bd_names)), "",
           "### BD-rate, MS-SSIM in dB", "",
           cmp.markdown_table(bd_hdr, cmp.bd_rows(bd_ms, bd_names)), "",
           "BD-rate: cubic fit of log-rate over quality, integrated over the quality range both "
           "curves share (gancomp/bdrate.py); n/a where they share less than 1 dB. Published curves: CompressAI's Kodak results "
           "for its MSE-trained models (GPU, float; from ../shared/anchors).", "",
           "### Encode / decode time per image (median, seconds)", "",
           cmp.markdown_table(["codec", "encode s", "decode s", "bpp range", "settings"], times), "",
           f"![PSNR]({psnr_png.name}) ![MS-SSIM]({ms_png.name})", "",
           "### RD points (mean over images)", "",
           cmp.markdown_table(cmp.COLUMNS, rd_rows)]
    text = "\n".join(md)
    echo(text)
    if write:
        title = f"{what} ({len(paths)} images)"
        plot(allc, psnr_png, title=title, metrics=("psnr",), xlim=(0.0, 1.6))
        plot(allc, ms_png, title=title, metrics=("ms_ssim",), xlim=(0.0, 1.6))
        write_section(out, section, text)
        echo(f"wrote section '{section}' of {out}, {psnr_png} and {ms_png}", file=sys.stderr)
    if json_path:
        cmp.write_text(json_path, cmp.to_json(result, {"bd_rate_psnr": bd_psnr,
                                                        "bd_rate_ms_ssim": bd_ms,
                                                        "command": command}))
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, through gancomp's error path
        raise InputError(f"bench kodak: {message}")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gancomp.benchmarks.kodak [DIR] [--images N] [--out FILE] [--no-write]``."""
    p = _Parser(prog="gancomp bench --suite kodak", description=__doc__.split("\n")[0])
    p.add_argument("dir", nargs="?", default=os.environ.get("GANCOMP_KODAK"),
                   help="folder of the Kodak images (default $GANCOMP_KODAK)")
    p.add_argument("--images", type=int, default=None, help="use only the first N images")
    p.add_argument("--out", default="docs/BENCHMARKS.md", help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print only; write nothing")
    p.add_argument("--codecs", default=None, help="comma list instead of the default set")
    p.add_argument("--section", default=SECTION, help=f"section key to write (default {SECTION})")
    p.add_argument("--anchors", default=None, help="CompressAI results CSV (published curves)")
    p.add_argument("--json", default=None, help="also write all measurements as JSON")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--held-out", action="store_true",
                   help="DIR is the training photo folder: run on its held-back photos "
                        "(gancomp.train.data.is_held_out), section kodak-heldout")
    p.add_argument("--thin", action="store_true",
                   help="five RD points per codec instead of seven (faster)")
    p.add_argument("--cache", default=None,
                   help="JSON-lines file of measured rows: reused when codec, image and "
                        "setting match, appended as measured (resumable runs)")
    a = p.parse_args(argv)
    if not a.dir:
        raise InputError("give the Kodak folder (or set GANCOMP_KODAK)")
    import torch

    torch.set_num_threads(max(1, a.threads))
    if not a.section.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InputError(f"bad --section key {a.section!r}")
    section = "kodak-heldout" if a.held_out and a.section == SECTION else a.section
    run(a.dir, images=a.images, out=a.out, write=not a.no_write, section=section,
        codecs=a.codecs.split(",") if a.codecs else None, anchors_csv=a.anchors, json_path=a.json,
        command=shlex.join(["gancomp", "bench", *(argv if argv is not None else sys.argv[1:])]),
        progress=True, held_out=a.held_out, cache=a.cache, thin=a.thin)


if __name__ == "__main__":
    try:
        main()
    except GanCompError as exc:
        print(f"gancomp: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
