"""Soak: many encode/decode round trips through the command line, in parallel processes
writing into one folder, each output checked against the same job run serially.

Jobs mix real images (tests/data, plus crops of the photos in ``--images DIR``; RGB, gray and
RGBA variants) and codecs (wavelet by quality and by ratio, kmeans, lossless, hyperprior with
small tiles, gan-inversion with --resize and few steps; learned codecs only when their model
is installed). Every job runs ``gancomp encode`` then ``gancomp decode`` (the real CLI code,
in-process, so outputs go through the temp-file-and-rename writer) into one shared folder
from ``--workers`` processes, then again one at a time into another folder. It counts jobs
whose .gcz and decoded image are byte-identical to the serial run, jobs that differ, jobs
that failed, and stray temporary files left in the folders. Run::

    python -m gancomp.benchmarks.soak --jobs 200 --workers 4 --images ../shared/data/kodak
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


def make_sources(folder: Path, images: str | None, n_crops: int, seed: int) -> list[Path]:
    """Source images written as PNG files into ``folder``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out: list[Path] = []
    for p in sorted(DATA.glob("*.png")):
        out.append(folder / p.name)
        out[-1].write_bytes(p.read_bytes())
    if images:
        photos = sorted(q for q in Path(images).iterdir()
                        if q.suffix.lower() in (".png", ".jpg", ".jpeg"))
        for i in range(n_crops):
            img = Image.open(photos[int(rng.integers(len(photos)))]).convert("RGB")
            h, w = int(rng.integers(48, 129)), int(rng.integers(48, 161))
            y, x = int(rng.integers(0, img.height - h)), int(rng.integers(0, img.width - w))
            crop = img.crop((x, y, x + w, y + h))
            kind = ("RGB", "L", "RGBA")[i % 3]
            if kind == "L":
                crop = crop.convert("L")
            elif kind == "RGBA":
                a = np.asarray(crop.convert("L"))
                crop = Image.fromarray(np.dstack([np.asarray(crop), 255 - a]), "RGBA")
            out.append(folder / f"crop{i:02d}_{kind.lower()}.png")
            crop.save(out[-1])
    return out


def make_jobs(sources: list[Path], n: int, seed: int) -> list[tuple[str, list[str]]]:
    """(name, extra encode args) for n jobs; the source is the first arg."""
    from ..weights import default_for

    rng = np.random.default_rng(seed + 1)
    menu: list[list[str]] = [["-c", "wavelet", "-q", "{q}"], ["-c", "wavelet", "--ratio", "{r}"],
                             ["-c", "kmeans", "-q", "{q}"], ["-c", "lossless"]]
    if default_for("hyperprior"):
        menu.append(["-c", "hyperprior", "-q", "{q}", "-x", "tile=64"])
    if default_for("gan-inversion"):
        menu.append(["-c", "gan-inversion", "--resize", "-x", "steps=4", "-x", "restarts=1"])
    jobs = []
    for i in range(n):
        src = sources[int(rng.integers(len(sources)))]
        args = [a.format(q=int(rng.integers(5, 96)), r=int(rng.integers(4, 60)))
                for a in menu[i % len(menu)]]
        jobs.append((f"j{i:03d}", [str(src)] + args))
    return jobs


def _cli(argv: list[str]) -> int:
    from ..cli import main

    old = sys.argv
    sys.argv = ["gancomp", *argv]
    try:
        main()
        return 0
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = old


def run_job(job: tuple[str, list[str], str]) -> tuple[str, int, float]:
    """Encode then decode one job into ``folder``; (name, exit code, seconds)."""
    name, args, folder = job
    t = time.perf_counter()
    gcz = os.path.join(folder, name + ".gcz")
    code = _cli(["encode", args[0], gcz, "--quiet", "-f", *args[1:]])
    if code == 0:
        code = _cli(["decode", gcz, os.path.join(folder, name + ".png"), "--quiet", "-f"])
    return name, code, time.perf_counter() - t


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def soak(n_jobs: int, workers: int, images: str | None, n_crops: int, seed: int,
         workdir: Path) -> dict:
    import multiprocessing as mp

    src, par, ser = workdir / "src", workdir / "parallel", workdir / "serial"
    for d in (src, par, ser):
        d.mkdir(parents=True, exist_ok=True)
    jobs = make_jobs(make_sources(src, images, n_crops, seed), n_jobs, seed)
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        par_res = {n: c for n, c, _ in pool.imap_unordered(
            run_job, [(n, a, str(par)) for n, a in jobs])}
    t_par = time.perf_counter() - t0
    _init_worker()
    t0 = time.perf_counter()
    ser_res = {n: c for n, c, _ in map(run_job, [(n, a, str(ser)) for n, a in jobs])}
    t_ser = time.perf_counter() - t0
    counts = {"jobs": n_jobs, "identical": 0, "different": 0, "failed_both": 0,
              "failed_one": 0}
    diffs: list[str] = []
    for name, args in jobs:
        if par_res[name] or ser_res[name]:
            counts["failed_both" if par_res[name] and ser_res[name] else "failed_one"] += 1
            diffs.append(f"{name} {args[1:]} exit {par_res[name]}/{ser_res[name]}")
            continue
        same = all((par / (name + s)).read_bytes() == (ser / (name + s)).read_bytes()
                   for s in (".gcz", ".png"))
        counts["identical" if same else "different"] += 1
        if not same:
            diffs.append(f"{name} {args[1:]} differs")
    stray = [p.name for d in (par, ser) for p in d.iterdir() if p.name.startswith(".")]
    codecs: dict[str, int] = {}
    for _, args in jobs:
        c = args[args.index("-c") + 1] + ("(ratio)" if "--ratio" in args else "")
        codecs[c] = codecs.get(c, 0) + 1
    return dict(counts, stray_temp_files=len(stray), workers=workers, codecs=codecs,
                sources=len(list(src.iterdir())), parallel_seconds=round(t_par, 1),
                serial_seconds=round(t_ser, 1), problems=diffs[:20])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--images", help="folder of photos to crop (e.g. ../shared/data/kodak)")
    ap.add_argument("--crops", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    ap.add_argument("--json", help="write the counts here")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if a.workdir:
        res = soak(a.jobs, a.workers, a.images, a.crops, a.seed, Path(a.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="gancomp-soak-") as d:
            res = soak(a.jobs, a.workers, a.images, a.crops, a.seed, Path(d))
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    if res["different"] or res["failed_one"] or res["stray_temp_files"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
