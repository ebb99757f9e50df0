"""GAN vs MSE decoder of ``generative`` on unseen photos (the held-back training photos):

    python -m gancomp.benchmarks.generative_heldout --data ../shared/data/train --count 6

For each of the first ``count`` held-back photos (``split_held_out``; never trained or tuned
on), cropped to at most ``--crop`` (default 768x512), one file per quality is decoded with ``--decoder gan`` and
``--decoder mse``; prints a markdown table of mean bpp, PSNR and SSIMULACRA2.
"""

from __future__ import annotations

import argparse

import numpy as np


def run(data: str, count: int, model: str | None, qualities: list[float],
        crop: tuple[int, int] = (768, 512)) -> str:
    from PIL import Image

    from .. import api, metrics
    from ..train.data import list_images, split_held_out
    from .generative import ssimulacra2

    held = split_held_out(list_images(data))[1][:count]
    opts = {"model": model} if model else {}
    res: dict[tuple[float, str], list[tuple[float, float, float]]] = {}
    for f in held:
        img = np.asarray(Image.open(f).convert("RGB"))[:crop[1], :crop[0]]
        for q in qualities:
            d = api.encode_array(img, "generative", q, **opts)
            bpp = len(d) * 8 / (img.shape[0] * img.shape[1])
            for dec in ("gan", "mse"):
                out = api.decode(d, decoder=dec).pixels
                res.setdefault((q, dec), []).append(
                    (bpp, metrics.psnr(img, out), ssimulacra2(img, out)))
    lines = [f"Held-back photos: {len(held)} ({', '.join(p.name for p in held)})", "",
             "| quality | decoder | images | bpp | PSNR dB | SSIMULACRA2 |", "|---|---|---|---|---|---|"]
    for (q, dec), r in res.items():
        a = np.array(r).mean(0)
        lines.append(f"| {q:g} | {dec} | {len(r)} | {a[0]:.3f} | {a[1]:.2f} | {a[2]:.2f} |")
    for q in qualities:
        d = np.array([g[2] - m[2] for g, m in zip(res[(q, "gan")], res[(q, "mse")])])
        lines.append(f"\nquality {q:g}: SSIMULACRA2 gan - mse per photo "
                     f"{' '.join(f'{x:+.2f}' for x in d)} (mean {d.mean():+.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.generative_heldout")
    ap.add_argument("--data", required=True, help="training photo folder (its held-back part is used)")
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--model", help="generative model id (default: installed default)")
    ap.add_argument("--qualities", default="0,25")
    ap.add_argument("--crop", default="768x512", help="WxH: top-left crop of each photo")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    w, h = (int(v) for v in a.crop.split("x"))
    print(run(a.data, a.count, a.model, [float(q) for q in a.qualities.split(",")], (w, h)))


if __name__ == "__main__":
    main()
