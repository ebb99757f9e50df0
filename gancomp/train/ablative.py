"""Train the ``ablative`` codec's inpainting network (seed 004), then export it.

1. The feature network learns to tell the rotation of a crop (0/90/180/270 degrees):
   ``feat_steps`` steps of self-supervised training, then frozen.
2. The inpainting network gets, per crop, exactly what the decoder sees: the kept 8x8 blocks
   (LoG edge blocks + random blocks, a random kept fraction and DCT quality per crop, coded
   and decoded by :mod:`gancomp.blockdct`) and the mask; loss on the output p against the
   original x: L1 + w_edge * ||LoG(p) - LoG(x)||^2 + w_style * Gram loss + w_content * feature
   loss (features of the network of step 1).

``python -m gancomp.train.ablative --preset cpu --data DIR --out runs/abl --minutes 20
--export models --model-id abl-cpu`` (resumable). bf16 autocast and channels_last on CUDA.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import gen_common as gc

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"width": 4, "feat_width": 4, "crop": 32, "per_image": 2, "batch": 2, "steps": 3,
             "feat_steps": 2, "log_every": 1},
    "cpu": {"width": 24, "feat_width": 16, "crop": 96, "per_image": 8, "batch": 6,
            "steps": 100000, "feat_steps": 150},
    "gpu": {"width": 32, "feat_width": 24, "crop": 192, "per_image": 24, "batch": 24,
            "steps": 1000000, "feat_steps": 1500, "half": True, "workers": 6},
}

DEFAULTS: dict[str, Any] = {
    "width": 24, "feat_width": 16, "crop": 96, "per_image": 8, "faces": False, "batch": 6,
    "lr": 5e-4, "lr_final": 5e-5, "steps": 100000, "minutes": 0, "feat_steps": 300,
    "fraction": [0.03, 0.5], "quality": [10, 90], "random_share": 0.25,
    "w_edge": 20.0, "w_style": 5.0, "w_content": 1.0, "seed": 0, "log_every": 20,
    "checkpoint_minutes": 4, "half": False,
}


def make_inputs(x_u8: np.ndarray, cfg: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept images (B, 3, H, W) in [0, 1], masks (B, 1, H, W)) as the decoder would see them."""
    from ..blockdct import simulate

    kept, masks = [], []
    for img in x_u8:
        f = rng.uniform(*cfg["fraction"])
        q = rng.uniform(*cfg["quality"])
        k, m = simulate(img, f, q, cfg["random_share"], rng)
        kept.append(k[:img.shape[0], :img.shape[1]])
        masks.append(m[:img.shape[0], :img.shape[1]])
    kept_a = np.stack(kept).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return np.ascontiguousarray(kept_a), np.stack(masks)[:, None].astype(np.float32)


_CROPS: np.ndarray | None = None
_CFG: dict = {}


def _make_batch(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(originals uint8 (B, H, W, 3), kept, masks) for one step; runs in worker processes."""
    rng = np.random.default_rng(seed)
    x_u8 = _CROPS[rng.integers(0, _CROPS.shape[0], _CFG["batch"])]
    if rng.random() < 0.5:
        x_u8 = x_u8[:, :, ::-1]
    x_u8 = np.ascontiguousarray(x_u8)
    kept, m = make_inputs(x_u8, _CFG, rng)
    return x_u8, kept, m


def _batches(crops: np.ndarray, cfg: dict, first_seed: int):
    """Endless batches, made by ``workers`` forked processes when > 0 (the block coding
    simulation is numpy work that would otherwise starve a GPU)."""
    global _CROPS, _CFG
    _CROPS, _CFG = crops, cfg
    seeds = iter(range(first_seed, 1 << 62))
    if int(cfg.get("workers", 0)) > 0:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(int(cfg["workers"])) as pool:
            yield from pool.imap(_make_batch, seeds, chunksize=2)
    else:
        for sd in seeds:
            yield _make_batch(sd)


def train(cfg: dict[str, Any], out: Path, device_name: str = "cpu", fresh: bool = False,
          quiet: bool = False) -> Path:
    import torch
    import torch.nn.functional as F

    from ..nn.inpaint import FeatureNet, InpaintNet, log_filter, style_content

    device = gc.setup_device(device_name, cfg.get("threads", 1))
    torch.manual_seed(cfg["seed"])
    out.mkdir(parents=True, exist_ok=True)
    crops = gc.crops_for(cfg["data"], cfg["crop"], cfg["per_image"], cfg["seed"], out, cfg["faces"])
    net, feat = InpaintNet(cfg["width"]).to(device), FeatureNet(cfg["feat_width"]).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
        feat = feat.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    opt_f = torch.optim.Adam(feat.parameters(), lr=1e-3)
    mods, opts = {"net": net, "feat": feat}, {"net": opt, "feat": opt_f}
    ckpt = out / "checkpoint.safetensors"
    step, extra = 0, {}
    if ckpt.is_file() and not fresh:
        step, extra = gc.load_checkpoint(ckpt, mods, opts)
    feat_done = int(extra.get("feat_done", 0))
    seconds_before = float(extra.get("seconds", 0.0))
    rng = np.random.default_rng(cfg["seed"] + step + feat_done)
    sched = gc.Schedule(cfg["steps"], cfg["minutes"])

    def save() -> None:
        gc.save_checkpoint(ckpt, mods, opts, step, cfg, {
            "seconds": seconds_before + sched.elapsed(), "feat_done": feat_done})

    # 1. feature network: rotation prediction
    while feat_done < cfg["feat_steps"] and not sched.done(step):
        x = torch.from_numpy(gc.batch(crops, cfg["batch"] * 2, rng)).to(device)
        k = rng.integers(0, 4, x.shape[0])
        xr = torch.stack([torch.rot90(xi, int(ki), (1, 2)) for xi, ki in zip(x, k)])
        with gc.autocast(device):
            loss = F.cross_entropy(feat(xr).float(), torch.from_numpy(k).to(device))
        opt_f.zero_grad(set_to_none=True)
        loss.backward()
        opt_f.step()
        feat_done += 1
        if not quiet and feat_done % 50 == 0:
            print(f"feature net {feat_done}: rotation loss {loss.item():.3f}", flush=True)
    feat.eval()
    for p in feat.parameters():
        p.requires_grad_(False)

    # 2. inpainting network
    fields = ["lr", "loss", "l1", "edge", "style", "content", "psnr_holes"]
    log = gc.LossLog(out / "loss.csv", fields, fresh or step == 0)
    last = time.time()
    batches = _batches(crops, cfg, cfg["seed"] * 1000003 + step + feat_done)
    try:
        while not sched.done(step):
            lr = gc.lr_at(cfg["lr"], cfg["lr_final"], sched.frac(step))
            for g in opt.param_groups:
                g["lr"] = lr
            x_u8, kept, m = next(batches)
            x = torch.from_numpy(np.ascontiguousarray(x_u8.transpose(0, 3, 1, 2)).astype(np.float32) / 255).to(device)
            kept_t, m_t = torch.from_numpy(kept).to(device), torch.from_numpy(m).to(device)
            with gc.autocast(device):
                p = net(kept_t, m_t).float()
            with torch.autocast(device_type=device.type, enabled=False):  # losses in float32
                hole = 1 - m_t
                l1 = (torch.abs(p - x) * (0.25 + hole)).mean()
                edge = F.mse_loss(log_filter(p), log_filter(x)) * 255 / 10
                style, content = style_content(feat, p, x)
                loss = l1 + cfg["w_edge"] * edge + cfg["w_style"] * style.float() + \
                    cfg["w_content"] * content.float()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            mse_h = (((p - x) ** 2) * hole).sum().item() / max(1.0, 3 * hole.sum().item())
            log.add(lr=lr, loss=loss.item(), l1=l1.item(), edge=edge.item(), style=style.item(),
                    content=content.item(), psnr_holes=gc.psnr_of(mse_h))
            if step % cfg["log_every"] == 0:
                mm = log.flush(step, seconds_before + sched.elapsed())
                if not quiet:
                    print(f"step {step} {sched.elapsed():.0f}s loss {mm['loss']:.4f} "
                          f"holes {mm['psnr_holes']:.2f} dB", flush=True)
            if time.time() - last > 60 * cfg["checkpoint_minutes"]:
                save()
                last = time.time()
    finally:
        batches.close()
        log.close()
        save()
    return ckpt


def export(ckpt: Path, folder: Path, model_id: str, default: bool = False, results: Any = None) -> Path:
    """Write ``folder/model_id.safetensors`` + card (inpainting network only)."""
    import torch

    from .. import weights
    from ..nn.inpaint import FeatureNet, InpaintNet

    cfg = gc.read_config(ckpt)
    net = InpaintNet(cfg["width"])
    step, extra = gc.load_checkpoint(ckpt, {"net": net, "feat": FeatureNet(cfg["feat_width"])})
    half = bool(cfg.get("half"))
    arrays = {k: (v.numpy().astype(np.float16) if half and v.ndim == 4 else v.numpy().astype(np.float32))
              for k, v in net.to(memory_format=torch.contiguous_format).state_dict().items()}
    arrays["arch"] = np.array([cfg["width"]], dtype=np.int64)
    card = {
        "id": model_id, "codec": "ablative", "default": default,
        "architecture": (f"push-pull fill + U-Net residual (width {cfg['width']}, 3 downsamplings, "
                         f"dilated bottleneck); losses L1 + {cfg['w_edge']}*LoG edge + "
                         f"{cfg['w_style']}*style (Gram) + {cfg['w_content']}*content on a rotation-"
                         f"trained feature net (width {cfg['feat_width']}, {extra.get('feat_done', 0)} steps)"),
        "config": cfg,
        "data": f"{cfg['data']} ({cfg['crop']}px crops, photos minus the held-back 5 %); never Kodak",
        "steps": step, "batch": cfg["batch"],
        "training": {"wall_minutes": round(float(extra.get("seconds", 0)) / 60, 1),
                     "device": cfg.get("device", "cpu")},
        "results": results,
    }
    return weights.save(arrays, card, Path(folder), model_id)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gancomp.train.ablative", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--crop", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--config", help="JSON overrides")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--export")
    ap.add_argument("--model-id", default="abl-cpu")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    cfg = dict(DEFAULTS)
    cfg.update(PRESETS[a.preset])
    cfg.update(json.loads(a.config) if a.config else {})
    cfg = gc.merge_config(cfg, data=str(a.data), minutes=a.minutes, steps=a.steps, crop=a.crop,
                          batch=a.batch, device=a.device, preset=a.preset)
    ckpt = train(cfg, Path(a.out), a.device, a.fresh, a.quiet)
    if a.export:
        print("exported", export(ckpt, Path(a.export), a.model_id))


if __name__ == "__main__":
    main()
