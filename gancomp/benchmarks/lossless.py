"""Lossless benchmark: the ``lossless`` codec against PNG, WebP, JPEG 2000, JPEG-LS and JPEG XL.

    OMP_NUM_THREADS=1 python -m gancomp.benchmarks.lossless /work/shared/data/kodak
    gancomp bench --suite lossless /work/shared/data/kodak

For every image and every method: the real file size (bpp = bytes * 8 / pixels, the .gcz
header included), encode and decode wall time and CPU time, and an exact round-trip check.
The gancomp files of the default variant are also decoded in a second process with
OMP_NUM_THREADS=2 and ATEN_CPU_CAPABILITY=default, which must give the same pixels. Prints the
table and writes section ``kodak-lossless`` of docs/BENCHMARKS.md with the command.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..baselines import pil_decode

VARIANTS: dict[str, dict] = {
    "lossless": {},
    "lossless --finetune": {"finetune": True},
    "lossless --entropy huffman": {"entropy": "huffman"},
}


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _webp(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="WEBP", lossless=True, method=6, quality=75)
    return buf.getvalue()


def _refs() -> dict[str, tuple[Callable, Callable]]:
    import imagecodecs as ic

    return {
        "PNG (Pillow, optimize)": (_png, pil_decode),
        "WebP lossless (m6, q75)": (_webp, pil_decode),
        "JPEG 2000 lossless (OpenJPEG 5/3)": (lambda a: ic.jpeg2k_encode(a, level=0, reversible=True),
                                              ic.jpeg2k_decode),
        "JPEG-LS (CharLS)": (ic.jpegls_encode, ic.jpegls_decode),
        "JPEG XL lossless (e7)": (lambda a: ic.jpegxl_encode(a, lossless=True, effort=7),
                                  ic.jpegxl_decode),
    }


def _timed(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


_VERIFY = r"""
import sys, numpy as np
from pathlib import Path
from PIL import Image
from gancomp import api
bad = 0
for gcz in sorted(Path(sys.argv[1]).glob("*.gcz")):
    ref = np.asarray(Image.open(Path(sys.argv[2]) / (gcz.stem + ".png")).convert("RGB"))
    bad += not np.array_equal(api.decode_array(gcz.read_bytes()), ref)
print(bad)
"""


def _verify_other_process(folder: Path, images: Path) -> int:
    env = dict(os.environ, OMP_NUM_THREADS="2", ATEN_CPU_CAPABILITY="default")
    r = subprocess.run([sys.executable, "-c", _VERIFY, str(folder), str(images)], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"verification process failed: {r.stderr.strip()[-400:]}")
    return int(r.stdout.strip().splitlines()[-1])


def run(folder: str, images: int | None, variants: Sequence[str], refs: bool,
        log=print) -> tuple[str, dict]:
    """Run the benchmark; returns (markdown table, raw results)."""
    from PIL import Image

    from .. import api
    from ..weights import default_for

    files = sorted(Path(folder).glob("*.png"))[:images]
    if not files:
        raise SystemExit(f"no PNG images in {folder}")
    methods: dict[str, tuple[Callable, Callable]] = {}
    for v in variants:
        opts = VARIANTS[v]
        methods[v] = ((lambda a, o=opts: api.encode_array(a, "lossless", **o)), api.decode_array)
    if refs:
        methods.update(_refs())
    res = {m: {"bits": 0, "px": 0, "enc": [], "dec": [], "enc_cpu": [], "dec_cpu": [],
               "exact": 0, "n": 0, "per_image": []} for m in methods}
    tmp = Path(tempfile.mkdtemp(prefix="gancomp-ll-"))
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"))
        for m, (enc, dec) in methods.items():
            data, we, ce = _timed(enc, img)
            out, wd, cd = _timed(dec, data)
            r = res[m]
            r["bits"] += 8 * len(data)
            r["px"] += img.shape[0] * img.shape[1]
            r["enc"].append(we), r["dec"].append(wd), r["enc_cpu"].append(ce), r["dec_cpu"].append(cd)
            r["exact"] += bool(np.array_equal(np.asarray(out).reshape(img.shape), img))
            r["n"] += 1
            r["per_image"].append(8 * len(data) / (img.shape[0] * img.shape[1]))
            if variants and m == variants[0]:
                (tmp / f"{f.stem}.gcz").write_bytes(data)
        log(f"{f.name}: " + ", ".join(f"{m.split(' (')[0]} {res[m]['bits'] / res[m]['px']:.3f}"
                                     for m in methods))
    other = _verify_other_process(tmp, Path(folder)) if variants else None
    card = default_for("lossless")
    lines = [
        f"Lossless coding of {len(files)} images of `{folder}` (as RGB). bpp = file bytes x 8 / "
        "pixels (gancomp: whole .gcz incl. header), mean over images = total bits / total "
        "pixels. Times: median over images, seconds, one thread (wall; CPU time in brackets — "
        "the machine is shared, so CPU time is the steadier number).",
        "",
        "| method | bpp | exact | encode s | decode s |",
        "|---|---:|---:|---:|---:|",
    ]
    for m, r in res.items():
        med = statistics.median
        lines.append(f"| {m} | {r['bits'] / r['px']:.3f} | {r['exact']}/{r['n']} | "
                     f"{med(r['enc']):.2f} ({med(r['enc_cpu']):.2f}) | "
                     f"{med(r['dec']):.2f} ({med(r['dec_cpu']):.2f}) |")
    lines += ["", "Per image (bpp):", "",
              "| image | " + " | ".join(m.split(" (")[0] for m in res) + " |",
              "|---|" + "---:|" * len(res)]
    for i, f in enumerate(files):
        lines.append(f"| {f.stem} | " + " | ".join(f"{r['per_image'][i]:.3f}" for r in res.values())
                     + " |")
    lines.append("")
    if other is not None:
        lines.append(f"Cross-process check: the `{variants[0]}` files decoded in a second process "
                     f"with OMP_NUM_THREADS=2, ATEN_CPU_CAPABILITY=default: "
                     f"{len(files) - other}/{len(files)} exact.")
    if card is not None:
        lines.append(f"Model: `{card.id}` (sha256 {card.sha256[:16]}…). Machine: "
                     f"{platform.machine()}, {os.cpu_count()} CPUs (shared), Python "
                     f"{platform.python_version()}.")
    return "\n".join(lines), res


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.lossless",
                                description="Lossless benchmark on Kodak.")
    p.add_argument("dir", nargs="?", default="../shared/data/kodak")
    p.add_argument("--images", type=int, default=None, help="only the first N images")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    p.add_argument("--no-refs", action="store_true", help="skip PNG/WebP/J2K/JPEG-LS/JXL")
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(list(argv) if argv is not None else None)
    import torch

    torch.set_num_threads(1)
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    table, _ = run(a.dir, a.images, variants, not a.no_refs, log=lambda s: print(s, flush=True))
    cmd = "python -m gancomp.benchmarks.lossless " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    if os.environ.get("OMP_NUM_THREADS"):
        cmd = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " + cmd
    md = f"## Lossless (Kodak)\n\nCommand: `{cmd}`\n\n{table}\n"
    print(md)
    if not a.no_write:
        from ..report import write_section

        write_section(a.out, "kodak-lossless", md)


if __name__ == "__main__":
    main()
