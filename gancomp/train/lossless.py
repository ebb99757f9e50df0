"""Train the predictor of the ``lossless`` codec on random pixel contexts of training photos.

    python -m gancomp.train.lossless --config default --data /work/shared/data/train \
        --out models --name lossless-mlp-v1

Contexts are cheap to sample: every training photo (and its 2x box-downscaled copy, which has
no JPEG blocking or chroma subsampling left) gives random pixels with their causal
neighbourhoods; 15% of the photos also enter as gray (luma replicated to three channels, only
the first head is trained on them) so gray images code well too. The loss is the exact code
length in bits of the truncated discretized logistic the codec uses. Images are split into
train / held-out validation by a hash of their file name; Kodak is never used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..nn import causal, intmlp
from .data import is_held_out

CONFIGS: dict[str, dict[str, Any]] = {
    # seconds on one core: for the test suite
    "tiny": {"hidden": 16, "head": 8, "samples": 20000, "steps": 40, "batch": 1024,
             "lr": 3e-3, "gray_frac": 0.3, "half_res": True, "context": "small"},
    "default": {"hidden": 64, "head": 32, "samples": 3_000_000, "steps": 30000, "batch": 4096,
                "lr": 2e-3, "gray_frac": 0.15, "half_res": True, "context": "small"},
    # as large, and the heads of R and B also see the G (and R) prediction error
    "large-err": {"hidden": 80, "head": 32, "samples": 3_000_000, "steps": 24000, "batch": 4096,
                  "lr": 2e-3, "gray_frac": 0.15, "half_res": True, "context": "large",
                  "pred_err": True},
    # three rows of context (19 neighbours), wider trunk
    "large": {"hidden": 80, "head": 32, "samples": 3_000_000, "steps": 30000, "batch": 4096,
              "lr": 2e-3, "gray_frac": 0.15, "half_res": True, "context": "large"},
}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}


def list_images(root: Path) -> list[Path]:
    """Image files under root, sorted (refuses Kodak)."""
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXT)
    if any("kodak" in str(p).lower() for p in files):
        raise SystemExit("refusing to train on Kodak (the test set)")
    return files


def _is_val(path: Path) -> bool:
    return is_held_out(path)  # ~5% held out


def _luma(rgb: np.ndarray) -> np.ndarray:
    r = rgb.astype(np.int32)
    y = (299 * r[..., 0] + 587 * r[..., 1] + 114 * r[..., 2] + 500) // 1000
    return np.repeat(y[..., None], 3, axis=2).astype(np.uint8)


def _half(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    x = rgb[:h, :w].astype(np.int32)
    s = x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]
    return ((s + 2) // 4).astype(np.uint8)


def sample_pool(files: list[Path], n: int, gray_frac: float, half_res: bool,
                seed: int = 0, context: str = "small") -> dict[str, np.ndarray]:
    """Random pixel contexts from the images: inputs, MEDs, targets (coding channel order),
    and a gray flag."""
    from PIL import Image

    ctx = causal.Context(causal.CONTEXTS[context])
    rng = np.random.default_rng(seed)
    variants: list[tuple[Path, bool, bool]] = []
    for f in files:
        variants.append((f, False, False))
        if half_res:
            variants.append((f, True, False))
        if rng.random() < gray_frac:
            variants.append((f, bool(half_res and rng.random() < 0.5), True))
    per = max(1, n // len(variants))
    out: dict[str, list[np.ndarray]] = {"inputs": [], "meds": [], "targets": [], "gray": []}
    for f, half, gray in variants:
        rgb = np.asarray(Image.open(f).convert("RGB"))
        if half:
            rgb = _half(rgb)
        if gray:
            rgb = _luma(rgb)
        img = np.ascontiguousarray(rgb[:, :, list(intmlp.ORDER)])
        h, w, _ = img.shape
        ys = rng.integers(0, h, per)
        xs = rng.integers(0, w, per)
        inputs, meds = ctx.gather(ctx.pad(img), ys, xs)
        out["inputs"].append(inputs.astype(np.int16))
        out["meds"].append(meds.astype(np.int16))
        out["targets"].append(img[ys, xs])
        out["gray"].append(np.full(per, gray))
    return {k: np.concatenate(v) for k, v in out.items()}


def _bits(model, pool: dict[str, np.ndarray], idx: np.ndarray):
    import torch

    x = torch.from_numpy(pool["inputs"][idx].astype(np.float32))
    m = torch.from_numpy(pool["meds"][idx].astype(np.float32))
    t = torch.from_numpy(pool["targets"][idx].astype(np.float32))
    g = torch.from_numpy(pool["gray"][idx])
    mean, sidx = model(x, m, t)
    bits = intmlp.nll_bits(mean, sidx, t)
    w = torch.ones_like(bits)
    w[g, 1:] = 0.0
    return bits, w


def evaluate_float(model, pool: dict[str, np.ndarray]) -> float:
    """Mean bits per RGB pixel (3 subpixels) on colour samples of the pool."""
    import torch

    sel = np.flatnonzero(~pool["gray"])
    total = 0.0
    with torch.no_grad():
        for a in range(0, sel.size, 65536):
            bits, _ = _bits(model, pool, sel[a:a + 65536])
            total += float(bits.sum())
    return total / max(1, sel.size)


def evaluate_int(arrays: dict[str, np.ndarray], pool: dict[str, np.ndarray]) -> float:
    """The same measure through the exact integer predictor and the stored table."""
    net = intmlp.IntPredictor(arrays)
    sel = np.flatnonzero(~pool["gray"])
    total = 0.0
    for a in range(0, sel.size, 65536):
        i = sel[a:a + 65536]
        meds, tg = pool["meds"][i].astype(np.int64), pool["targets"][i].astype(np.int64)
        h = net.trunk(pool["inputs"][i])
        res = tg - meds
        errs = np.zeros_like(res)
        for k in range(3):
            out, shift = net.head(k, h, res, errors=errs)
            mean8, idx = net.params(meds[:, k], out, shift)
            errs[:, k] = tg[:, k] * intmlp.MEAN_FRAC - mean8
            total += float(net.bits(mean8, idx, tg[:, k]).sum())
    return total / max(1, sel.size)


def train(cfg: dict[str, Any], files: list[Path], log=print, seed: int = 0,
          init_arrays: dict | None = None):
    """Train a predictor; returns (float model, integer arrays, results dict)."""
    import torch

    torch.manual_seed(seed)
    train_files = [f for f in files if not _is_val(f)] or files
    val_files = [f for f in files if _is_val(f)] or files[:1]
    t0 = time.time()
    context = cfg.get("context", "small")
    pool = sample_pool(train_files, cfg["samples"], cfg["gray_frac"], cfg["half_res"], seed,
                       context)
    val = sample_pool(val_files, max(2000, cfg["samples"] // 20), 0.0, cfg["half_res"], seed + 1,
                      context)
    log(f"pool {pool['targets'].shape[0]} samples from {len(train_files)} images, "
        f"val {val['targets'].shape[0]} from {len(val_files)} ({time.time() - t0:.0f} s)")
    model = intmlp.build_float(cfg["hidden"], cfg["head"], context=context,
                               pred_err=bool(cfg.get("pred_err", False)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps = cfg["steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = np.random.default_rng(seed)
    n = pool["targets"].shape[0]
    run = 0.0
    for step in range(steps):
        idx = rng.integers(0, n, cfg["batch"])
        bits, w = _bits(model, pool, idx)
        loss = (bits * w).sum() / w[:, 0].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        lv = float(loss.detach())
        run = 0.98 * run + 0.02 * lv if step else lv
        if (step + 1) % max(1, steps // 20) == 0 or step + 1 == steps:
            log(f"step {step + 1}/{steps} train {run:.4f} bpp  ({time.time() - t0:.0f} s)")
    val_float = evaluate_float(model, val)
    arrays = intmlp.quantize(model)
    val_int = evaluate_int(arrays, val)
    results = {"val_bpp_float": round(val_float, 4), "val_bpp_int": round(val_int, 4),
               "train_seconds": round(time.time() - t0, 1),
               "val_images": len(val_files), "train_images": len(train_files)}
    log(f"validation: float {val_float:.4f} bpp, integer {val_int:.4f} bpp")
    return model, arrays, results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gancomp.train.lossless", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="default", help=f"one of {sorted(CONFIGS)} or a JSON file")
    p.add_argument("--data", required=True, help="folder of training images (never Kodak)")
    p.add_argument("--out", default="models", help="folder for NAME.safetensors + NAME.json")
    p.add_argument("--name", default="lossless-mlp-v1", help="model id and file name")
    p.add_argument("--steps", type=int, default=None, help="override the config's steps")
    p.add_argument("--samples", type=int, default=None, help="override the config's samples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    cfg = dict(CONFIGS[a.config]) if a.config in CONFIGS else json.loads(Path(a.config).read_text())
    if a.steps:
        cfg["steps"] = a.steps
    if a.samples:
        cfg["samples"] = a.samples
    files = list_images(Path(a.data))
    if not files:
        print(f"error: no images under {a.data}", file=sys.stderr)
        return 2
    _, arrays, results = train(cfg, files, log=lambda s: print(s, flush=True), seed=a.seed)
    from .. import weights

    card = {"id": a.name, "codec": "lossless", "default": True,
            "config": dict(cfg, **intmlp.describe(arrays)),
            "data": f"{len(files)} photos under {a.data} (train/val split by file-name hash; "
                    "each also 2x box-downscaled; some as gray)",
            "steps": cfg["steps"], "results": results,
            "command": "python -m gancomp.train.lossless " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "note": "integer MLP predictor; discretized logistic table; see gancomp/nn/intmlp.py"}
    path = weights.save(arrays, card, Path(a.out), a.name)
    print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
