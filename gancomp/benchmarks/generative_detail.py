"""Where the GAN decoder of ``generative`` adds what the file does not hold: crops of saved
benchmark files, original / MSE decoder / GAN decoder / 128 + 4 (GAN - MSE) / 128 +
4 (|GAN - original| - |MSE - original|) (bright: the GAN moved away from the original, i.e.
invented; dark: it moved toward it), each zoomed 3x, at a 96 px window chosen by
``--select``: ``moved`` = the most |GAN - MSE| (where the generator acts most), ``worse`` = the
largest sum of |GAN - original| - |MSE - original| (where what it adds is least like the
original). Windows are not chosen by how good they look.

    python -m gancomp.benchmarks.generative_detail --kodak ../shared/data/kodak \\
        --save docs/i15_bench --files kodim05_0.1,kodim13_0.2,kodim23_0.1 \\
        --out docs/i15_generative_detail.png [--select moved,worse]

Prints, per file and window, the mean |GAN - MSE| inside it and over the whole image, and the
share of pixels where the GAN output is farther from the original than the MSE output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .. import api
from .generative import grid

SIZE = 96
ZOOM = 3


def busiest_window(diff: np.ndarray, size: int = SIZE, step: int = 16) -> tuple[int, int]:
    """Top-left of the ``size`` window with the largest sum of ``diff`` (2-D)."""
    c = np.pad(diff.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, at = -1.0, (0, 0)
    for y in range(0, diff.shape[0] - size + 1, step):
        for x in range(0, diff.shape[1] - size + 1, step):
            s = c[y + size, x + size] - c[y, x + size] - c[y + size, x] + c[y, x]
            if s > best:
                best, at = s, (y, x)
    return at


def main(argv: list[str] | None = None) -> None:
    from PIL import Image

    ap = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.generative_detail")
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--save", required=True, help="benchmark folder with NAME_TARGET.gcz files")
    ap.add_argument("--files", required=True, help="comma list of NAME_TARGET stems")
    ap.add_argument("--out", required=True)
    ap.add_argument("--select", default="moved", help="comma list of moved,worse (one row each)")
    a = ap.parse_args(argv)
    cells = []
    for stem in a.files.split(","):
        name = stem.rsplit("_", 1)[0]
        img = np.asarray(Image.open(Path(a.kodak) / f"{name}.png").convert("RGB"))
        data = (Path(a.save) / f"{stem}.gcz").read_bytes()
        gan = api.decode(data, decoder="gan").pixels.astype(np.int64)
        mse = api.decode(data, decoder="mse").pixels.astype(np.int64)
        d = np.abs(gan - mse).sum(2).astype(np.float64)
        o = img.astype(np.int64)
        worse = (np.abs(gan - o) - np.abs(mse - o)).sum(2).astype(np.float64)
        bpp = len(data) * 8 / (img.shape[0] * img.shape[1])
        print(f"{stem}: whole image mean |GAN-MSE| {d.mean() / 3:.2f} levels; GAN farther from "
              f"the original than MSE on {(worse > 0).mean() * 100:.1f} % of pixels, closer on "
              f"{(worse < 0).mean() * 100:.1f} %")
        for sel in a.select.split(","):
            y, x = busiest_window(d if sel == "moved" else worse)
            w = (slice(y, y + SIZE), slice(x, x + SIZE))
            print(f"  {sel}: window y {y} x {x}, mean |GAN-MSE| {d[w].mean() / 3:.2f}, mean "
                  f"(|GAN-orig| - |MSE-orig|) {worse[w].mean() / 3:+.2f} levels")

            def cut(v: np.ndarray) -> np.ndarray:
                c = np.clip(v[w], 0, 255).astype(np.uint8)
                return np.asarray(Image.fromarray(c).resize((SIZE * ZOOM, SIZE * ZOOM),
                                                            Image.NEAREST))

            cells.append((f"{stem} ({bpp:.3f} bpp) {sel} @{y},{x}",
                          [("original", cut(img)), ("mse", cut(mse)), ("gan", cut(gan)),
                           ("128+4(gan-mse)", cut(128 + 4 * (gan - mse))),
                           ("128+4(|gan-o|-|mse-o|)", cut(128 + 4 * np.repeat(
                               worse[..., None] / 3, 3, 2)))]))
    grid(cells, Path(a.out), size=SIZE * ZOOM)
    print(a.out)


if __name__ == "__main__":
    main()
