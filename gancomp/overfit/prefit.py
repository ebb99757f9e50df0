"""Pre-fitted starting networks for ``overfit``: one synthesis + ARM per architecture, fitted
jointly to a few training photos (each with its own latents), so that an encode starts from
networks that already turn latents into images and already predict latents well, instead of
from random ones (fewer iterations for the same quality, no warm-up over random starts).

The encoder only starts from these weights; the file still stores the image's own networks,
so decoding never needs them.

    python -m gancomp.overfit.prefit --data ../shared/data/train --out models/overfit-init-v1

Kodak is refused (gancomp.train.data.list_images) and the held-back photos are left out.
"""

from __future__ import annotations

import argparse
import sys
import math
import time
from pathlib import Path

import numpy as np

from . import fit as F
from .model import Arch, param_shapes

ARCHS = {"small": Arch(syn=(16,), arm=8), "large": Arch(syn=(24, 24), arm=16)}


def training_crops(folder: str, n: int, size: int, seed: int) -> list[np.ndarray]:
    """``n`` random size x size crops of distinct training photos (held-back ones excluded)."""
    from PIL import Image

    from ..train.data import list_images, split_held_out

    files, _ = split_held_out(list_images(folder))
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(files)):
        a = np.asarray(Image.open(files[i]).convert("RGB"))
        if min(a.shape[:2]) < size:
            continue
        y = rng.integers(0, a.shape[0] - size + 1)
        x = rng.integers(0, a.shape[1] - size + 1)
        out.append(np.ascontiguousarray(a[y:y + size, x:x + size]))
        if len(out) == n:
            break
    return out


def features(img: np.ndarray, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per grid g, (n_g, N_FEAT) features of each latent position: the 3x3 neighbourhood of
    the image average-pooled by 2^g (RGB, minus the image mean), the same of the pool by
    2^(g+1) upsampled to grid g, and 1."""
    import torch
    import torch.nn.functional as Fn

    x = torch.from_numpy(img.astype(np.float64) / 255.0).permute(2, 0, 1)[None]
    x = x - x.mean((2, 3), keepdim=True)
    out = []
    for g, (h, w) in enumerate(shapes):
        p = Fn.avg_pool2d(x, 2 ** g, ceil_mode=True) if g else x
        c = Fn.avg_pool2d(x, 2 ** (g + 1), ceil_mode=True)
        c = Fn.interpolate(c, scale_factor=2.0, mode="bilinear", align_corners=False)
        c = c[..., :h, :w]
        if c.shape[-2:] != (h, w):
            c = Fn.pad(c, (0, w - c.shape[-1], 0, h - c.shape[-2]), mode="replicate")
        cols = [Fn.unfold(t, 3, padding=1)[0] for t in (p[..., :h, :w], c)]
        f = torch.cat([*cols, torch.ones(1, h * w, dtype=x.dtype)]).t()
        out.append(f.numpy())
    return out


N_FEAT = 55


def fit_analysis(imgs: list[np.ndarray], latents: list[list[np.ndarray]], arch: Arch,
                 ridge: float = 1e-3) -> np.ndarray:
    """(grids, N_FEAT) least-squares map from :func:`features` to the pre-fitted latents."""
    coef = np.zeros((arch.grids, N_FEAT))
    for g in range(arch.grids):
        a = np.concatenate([features(im, arch.grid_shapes(*im.shape[:2]))[g] for im in imgs])
        y = np.concatenate([lat[g].ravel() for lat in latents])
        coef[g] = np.linalg.solve(a.T @ a + ridge * len(y) * np.eye(N_FEAT), a.T @ y)
    return coef


def analysis(img: np.ndarray, coef: np.ndarray, arch: Arch) -> list[np.ndarray]:
    """Starting latents of ``img`` from the least-squares map of :func:`fit_analysis`."""
    shapes = arch.grid_shapes(*img.shape[:2])
    return [(f @ coef[g]).reshape(shapes[g]) for g, f in enumerate(features(img, shapes))]


def prefit(imgs: list[np.ndarray], arch: Arch, lams: list[float], iters: int, seed: int = 0,
           log=None) -> tuple[dict[str, np.ndarray], list[list[np.ndarray]]]:
    """Shared networks fitted to all ``imgs`` at once (image i at trade-off ``lams[i % len]``),
    with the per-image schedule of :func:`gancomp.overfit.fit.fit` (noise + soft rounding,
    cosine learning rates). Returns the float network weights."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    dgen = torch.Generator().manual_seed(seed + 1)
    models = [F._Model(arch, im, "cpu", gen) for im in imgs]
    nets = models[0].nets
    for m in models[1:]:
        m.nets = nets
    s = F.Schedule()
    opt = F._Adam([[y for m in models for y in m.latents], list(nets.values())])
    for it in range(iters):
        c = 0.5 * (1 + math.cos(math.pi * it / iters))
        t = s.t_start + (s.t_end - s.t_start) * it / iters
        total = 0.0
        for i, m in enumerate(models):
            qs = [F.softround(F.softround(y, t) + torch.rand(y.shape, generator=dgen) - 0.5, t)
                  for y in m.latents]
            loss, mse, bits = m.loss(qs, lams[i % len(lams)])
            (loss / len(models)).backward()
            total += float(loss.detach())
        opt.step([s.lr_lat * c, s.lr_net * c], s.clip)
        if log and (it % 50 == 0 or it == iters - 1):
            log(f"{it} loss {total / len(models):.5f}")
    return ({k: v.detach().double().numpy() for k, v in nets.items()},
            [[y.detach().double().numpy() for y in m.latents] for m in models])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/train")
    p.add_argument("--out", default="models/overfit-init-v1")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--qualities", default="25,55,85")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-analysis", action="store_true",
                   help="leave out the least-squares latent projection (it did not help)")
    a = p.parse_args(argv)
    import torch

    from ..codecs.overfit import lambda_of
    from ..weights import save

    torch.set_num_threads(1)
    imgs = training_crops(a.data, a.images, a.size, a.seed)
    lams = [lambda_of(float(q)) for q in a.qualities.split(",")]
    tensors, t0 = {}, time.process_time()
    for name, arch in ARCHS.items():
        nets, lats = prefit(imgs, arch, lams, a.iters, a.seed, log=lambda m: print(name, m, flush=True))
        for k, _ in param_shapes(arch):
            tensors[f"{name}.{k}"] = nets[k].astype(np.float32)
        if not a.no_analysis:
            tensors[f"{name}.analysis"] = fit_analysis(imgs, lats, arch).astype(np.float32)
    out = Path(a.out)
    card = {"id": out.name, "codec": CARD_CODEC, "default": True,
            "config": {k: {"grids": v.grids, "syn": list(v.syn), "arm": v.arm} for k, v in ARCHS.items()},
            "data": f"{a.images} random {a.size}x{a.size} crops of distinct photos of "
                    f"{a.data} (held-back photos excluded), qualities {a.qualities}",
            "steps": a.iters, "results": {"cpu_seconds": round(time.process_time() - t0, 1)},
            "note": "starting networks (and a least-squares latent projection) for the overfit "
                    "encoder; version-2 files store their networks as differences from these. "
                    "Made by gancomp/overfit/prefit.py",
            "command": "python -m gancomp.overfit.prefit " + " ".join(argv or sys.argv[1:])}
    path = save(tensors, card, out.parent, out.name)
    print(path.with_suffix(".json").read_text())
    return 0


CARD_CODEC = "overfit-init"


def starting_point(model_id: str | None = None, sha: str = ""):
    """(arrays, card) of the named (else the installed default) starting networks; None when
    none is installed and none is named."""
    from ..weights import default_for, load

    if model_id is None:
        card = default_for(CARD_CODEC)
        if card is None:
            return None
        model_id, sha = card.id, card.sha256
    return load(model_id, sha)


def for_arch(arrays: dict, card, arch: Arch) -> dict[str, np.ndarray] | None:
    """The starting networks (plus the "analysis" map) of ``arch`` in a loaded model, or
    None when the model has none of that size."""
    for name, c in (card.card.get("config") or {}).items():
        if (c["grids"], tuple(c["syn"]), c["arm"]) == (arch.grids, arch.syn, arch.arm):
            keys = [*(n for n, _ in param_shapes(arch)), "analysis"]
            return {k: arrays[f"{name}.{k}"] for k in keys if f"{name}.{k}" in arrays}
    return None


if __name__ == "__main__":
    raise SystemExit(main())
