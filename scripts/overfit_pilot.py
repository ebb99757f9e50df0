"""Pilot for the overfit encoder's fitting recipe: RD against iterations on crops of training
photos (never Kodak, never the held-back photos), one variant at a time.

    python scripts/overfit_pilot.py --variant base --iters 150,300 --q 40,75
    python scripts/overfit_pilot.py --variant init --init /tmp/init-a.safetensors ...

Prints one JSON line per (variant, image, quality, iterations): true bpp of the coded tile
(weights + latents, no container), PSNR of the exact decoder output, the RD cost
J = MSE + lambda * bpp, CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def pilot_crops(folder: str, n: int, seed: int = 1234) -> list[tuple[str, np.ndarray]]:
    """384x256 centre crops of ``n`` training photos picked by ``seed`` (not prefit's)."""
    from PIL import Image

    from gancomp.train.data import list_images, split_held_out

    files, _ = split_held_out(list_images(folder))
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(files)):
        a = np.asarray(Image.open(files[i]).convert("RGB"))
        if a.shape[0] < 256 or a.shape[1] < 384:
            continue
        y, x = (a.shape[0] - 256) // 2, (a.shape[1] - 384) // 2
        out.append((files[i].name, np.ascontiguousarray(a[y:y + 256, x:x + 384])))
        if len(out) == n:
            break
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="../shared/data/train")
    p.add_argument("--variant", default="base")
    p.add_argument("--images", type=int, default=1)
    p.add_argument("--skip", type=int, default=0, help="leave out the first N pilot crops")
    p.add_argument("--iters", default="150,300")
    p.add_argument("--q", default="40,75")
    p.add_argument("--init", default=None, help="safetensors of prefit.py (small.* tensors)")
    p.add_argument("--no-analysis", action="store_true", help="zero latents even with --init")
    p.add_argument("--no-delta", action="store_true", help="code absolute weights even with --init")
    p.add_argument("--set", action="append", default=[], help="Schedule field=value")
    a = p.parse_args()
    import torch

    from gancomp.codecs.overfit import arch_for, lambda_of
    from gancomp.overfit import fit as F
    from gancomp.overfit.model import param_shapes
    from gancomp.overfit.pack import pack

    torch.set_num_threads(1)
    over = {k: float(v) for k, v in (s.split("=") for s in a.set)}
    for name, img in pilot_crops(a.data, a.skip + a.images)[a.skip:]:
        arch = arch_for(img.shape[0] * img.shape[1])
        init = None
        if a.init:
            from safetensors.numpy import load_file

            t = load_file(a.init)
            tag = "small" if arch.syn == (16,) else "large"
            init = {k: t[f"{tag}.{k}"] for k, _ in param_shapes(arch)}
            if not a.no_analysis and f"{tag}.analysis" in t:
                init["analysis"] = t[f"{tag}.analysis"]
        for q in (float(x) for x in a.q.split(",")):
            lam = lambda_of(q)
            for n in (int(x) for x in a.iters.split(",")):
                sched = F.Schedule(iters=n, **{k: (int(v) if k in ("candidates", "warm") else v)
                                               for k, v in over.items()})
                t0 = time.process_time()
                r = F.fit(img, lam, arch, sched, seed=0, init=init)
                t1 = time.process_time()
                pk = pack(arch, r.latents, r.params, lam, img, init=None if a.no_delta else init)
                bpp = 8 * sum(len(s) for s in pk.streams) / (img.shape[0] * img.shape[1])
                mse = float(np.mean((pk.pixels.astype(np.float64) - img) ** 2)) / 255.0 ** 2
                print(json.dumps({"variant": a.variant, "image": name, "q": q, "iters": n,
                                  "bpp": round(bpp, 4), "psnr": round(-10 * np.log10(mse), 3),
                                  "J": round(mse + lam * bpp, 7), "fit_cpu_s": round(t1 - t0, 1),
                                  "set": a.set}), flush=True)


if __name__ == "__main__":
    main()
