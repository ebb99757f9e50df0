"""Train generator v3 of ``generative`` (:class:`gancomp.nn.w2gen.BaseGenerator`) on wavelet2
decodes, then export it.

Data: random crops of the training photos (held-back photos excluded, never Kodak), each
coded by wavelet2 at a random step code in ``steps`` (the 0.05-0.4 bpp range) and decoded
exactly as the codec decodes; the pairs are computed once and cached (``pairs_*.npz``).
Per step, on random ``crop`` px windows of the pairs (flips): generator loss
w_mse * 255^2/1000 * MSE + w_ssim * (1 - MS-SSIM) + w_s2 * SSIMULACRA2 (differentiable port)
+ w_fm * feature matching + w_gan * LSGAN; a multi-scale LSGAN discriminator on real crops vs
generator output.

``python -m gancomp.train.w2gen --preset cpu --data DIR --out runs/w2g --minutes 45``
(resumes from runs/w2g/checkpoint.safetensors); ``--export models --model-id ID`` writes the
weights + card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import gen_common as gc

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"width": 4, "d_width": 4, "pairs": 4, "pair_crop": 64, "crop": 32, "batch": 2,
             "steps": 3, "log_every": 1},
    "cpu": {"width": 32, "d_width": 24, "pairs": 600, "pair_crop": 256, "crop": 128,
            "batch": 6, "steps": 100000},
    "gpu": {"width": 48, "d_width": 48, "pairs": 4000, "pair_crop": 256, "crop": 192,
            "batch": 16, "steps": 1000000},
}

DEFAULTS: dict[str, Any] = {
    "width": 32, "noise": True, "d_width": 24, "d_scales": 2, "pairs": 600, "pair_crop": 256,
    "step_lo": 172, "step_hi": 240, "crop": 128, "batch": 6, "lr": 2e-4, "lr_final": 5e-5,
    "d_lr": 2e-4, "steps": 100000, "minutes": 0, "gan_start": 0.0, "w_mse": 0.25,
    "w_ssim": 2.0, "w_s2": 0.03, "w_fm": 1.0, "w_gan": 0.2, "seed": 0, "log_every": 20,
    "checkpoint_minutes": 4,
}


def wavelet2_pair(img: np.ndarray, step_code: int) -> np.ndarray:
    """The exact wavelet2 decode of ``img`` coded at ``step_code`` (as the codec decodes it)."""
    from ..codecs.generative_w2 import W2_VERSION
    from ..codecs.wavelet2 import CHROMA_CODE, Wavelet2Codec

    c = Wavelet2Codec()
    e = c.encode_analysed(img.shape, c.analyse(img), int(step_code), CHROMA_CODE,
                          version=W2_VERSION)
    return c.decode(e.params, e.streams, img.shape[1], img.shape[0], 3)


def make_pairs(cfg: dict[str, Any], out: Path) -> dict[str, np.ndarray]:
    """(orig, decoded, step codes) for ``cfg['pairs']`` training crops, cached in ``out``."""
    files = gc.training_files(cfg["data"])
    key = hashlib.sha256("\n".join(map(str, files)).encode() + json.dumps(
        [cfg[k] for k in ("pairs", "pair_crop", "step_lo", "step_hi", "seed")]).encode())
    path = out / f"pairs_{key.hexdigest()[:12]}.npz"
    if path.is_file():
        z = np.load(path)
        return {k: z[k] for k in z.files}
    from .data import extract_crops

    rng = np.random.default_rng(cfg["seed"])
    per = max(1, -(-cfg["pairs"] // len(files)))
    crops = extract_crops(files, cfg["pair_crop"], per, cfg["seed"])
    crops = crops[rng.permutation(len(crops))[:cfg["pairs"]]]
    codes = rng.integers(cfg["step_lo"], cfg["step_hi"] + 1, len(crops))
    dec = np.stack([wavelet2_pair(c, s) for c, s in zip(crops, codes)])
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "pairs.tmp.npz"
    np.savez(tmp, orig=crops, dec=dec, codes=codes.astype(np.int64))
    tmp.replace(path)
    return {"orig": crops, "dec": dec, "codes": codes}


def sample(pairs: dict[str, np.ndarray], size: int, crop: int, rng: np.random.Generator):
    """(x, x_base, step codes): random ``crop`` windows (B, 3, crop, crop) in [0, 1]."""
    n, h, w, _ = pairs["orig"].shape
    idx = rng.integers(0, n, size)
    ys, xs = rng.integers(0, h - crop + 1, size), rng.integers(0, w - crop + 1, size)
    flip = rng.random() < 0.5
    outs = []
    for key in ("orig", "dec"):
        b = np.stack([pairs[key][i, y:y + crop, x:x + crop] for i, y, x in zip(idx, ys, xs)])
        b = b.astype(np.float32) / 255.0
        if flip:
            b = b[:, :, ::-1]
        outs.append(np.ascontiguousarray(b.transpose(0, 3, 1, 2)))
    return outs[0], outs[1], pairs["codes"][idx].astype(np.float32)


def build(cfg: dict[str, Any]):
    from ..nn.w2gen import BaseGenerator

    return BaseGenerator(cfg["width"], cfg["noise"])


def train(cfg: dict[str, Any], out: Path, device_name: str = "cpu", fresh: bool = False,
          quiet: bool = False) -> Path:
    """Train per ``cfg`` into ``out`` (checkpoint, loss.csv); returns the checkpoint path."""
    import torch
    import torch.nn.functional as F

    from ..nn.generative import Discriminator, ms_ssim_loss
    from ..nn.ssimulacra2_torch import loss as s2_loss

    device = gc.setup_device(device_name, cfg.get("threads", 1))
    torch.manual_seed(cfg["seed"])
    out.mkdir(parents=True, exist_ok=True)
    pairs = make_pairs(cfg, out)
    gen = build(cfg).to(device)
    disc = Discriminator(cfg["d_scales"], cfg["d_width"]).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg["d_lr"], betas=(0.5, 0.999))
    mods, opts = {"gen": gen, "disc": disc}, {"g": opt_g, "d": opt_d}
    ckpt = out / "checkpoint.safetensors"
    step, extra = 0, {}
    if ckpt.is_file() and not fresh:
        step, extra = gc.load_checkpoint(ckpt, mods, opts)
    sched = gc.Schedule(cfg["steps"], cfg["minutes"])
    before = float(extra.get("seconds", 0.0))
    cpu_before = float(extra.get("cpu_seconds", 0.0))
    cpu0 = time.process_time()
    rng = np.random.default_rng(cfg["seed"] + step)
    fields = ["lr", "psnr_base", "psnr_gan", "msssim_gan", "s2", "g_adv", "fm", "d"]
    log = gc.LossLog(out / "loss.csv", fields, fresh or step == 0)
    last_ckpt = time.time()

    def extra_now() -> dict:
        return {"seconds": before + sched.elapsed(),
                "cpu_seconds": cpu_before + time.process_time() - cpu0}

    try:
        while not sched.done(step):
            frac = sched.frac(step)
            lr = gc.lr_at(cfg["lr"], cfg["lr_final"], frac)
            for g in opt_g.param_groups:
                g["lr"] = lr
            x, xb, codes = (torch.from_numpy(a).to(device)
                            for a in sample(pairs, cfg["batch"], cfg["crop"], rng))
            gan_on = frac >= cfg["gan_start"]
            with gc.autocast(device):
                x_gan = gen(xb, codes).float()
                mse_g = F.mse_loss(x_gan, x)
                ssim_l = ms_ssim_loss(x_gan.clamp(0, 1), x)
                loss_g = cfg["w_mse"] * 255 ** 2 / 1000 * mse_g + cfg["w_ssim"] * ssim_l
                s2 = torch.zeros((), device=device)
                if cfg["w_s2"]:  # the evaluation metric itself (nn/ssimulacra2_torch.py)
                    s2 = s2_loss(x, x_gan.clamp(0, 1), canonical=True)
                    loss_g = loss_g + cfg["w_s2"] * s2
                adv = fm = torch.zeros((), device=device)
                if gan_on and cfg["w_gan"] + cfg["w_fm"] > 0:
                    adv, fm = gc.lsgan_generator_losses(disc, x_gan, x)
                    loss_g = loss_g + cfg["w_gan"] * adv + cfg["w_fm"] * fm
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
            opt_g.step()
            d_loss = torch.zeros(())
            if gan_on and cfg["w_gan"] + cfg["w_fm"] > 0:
                with gc.autocast(device):
                    real, fake = disc(x), disc(x_gan.detach())
                    d_loss = gc.lsgan_discriminator_loss(real, fake)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            step += 1
            log.add(lr=lr, psnr_base=gc.psnr_of(F.mse_loss(xb, x).item()),
                    psnr_gan=gc.psnr_of(mse_g.item()), msssim_gan=1 - ssim_l.item(),
                    s2=s2.item(), g_adv=adv.item(), fm=fm.item(), d=d_loss.item())
            if step % cfg["log_every"] == 0:
                m = log.flush(step, before + sched.elapsed())
                if not quiet:
                    print(f"step {step} {sched.elapsed():.0f}s psnr base {m['psnr_base']:.2f} "
                          f"gan {m['psnr_gan']:.2f} msssim {m['msssim_gan']:.4f} s2 {m['s2']:.2f} "
                          f"adv {m['g_adv']:.3f} d {m['d']:.3f}", flush=True)
            if time.time() - last_ckpt > 60 * cfg["checkpoint_minutes"]:
                gc.save_checkpoint(ckpt, mods, opts, step, cfg, extra_now())
                last_ckpt = time.time()
    finally:
        log.close()
        gc.save_checkpoint(ckpt, mods, opts, step, cfg, extra_now())
    return ckpt


def export_arrays(gen, cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The generator's weights (float32) and ``w2gen_arch`` = [3 (generator v3), width, noise]."""
    arrays = {f"gen.{k}": v.detach().float().numpy() for k, v in gen.state_dict().items()}
    arrays["w2gen_arch"] = np.array([3, cfg["width"], int(cfg["noise"])], np.int64)
    return arrays


def export(ckpt: Path, folder: Path, model_id: str, default: bool = False,
           results: Any = None) -> Path:
    """Write ``folder/model_id.safetensors`` + card from a checkpoint."""
    from .. import weights

    cfg = gc.read_config(ckpt)
    gen = build(cfg)
    step, extra = gc.load_checkpoint(ckpt, {"gen": gen})
    card = {
        "id": model_id, "codec": "generative", "default": default,
        "architecture": (f"generator v3 (width {cfg['width']}, noise={cfg['noise']}): residual "
                         "U-Net at 1/2, 1/4, 1/8 resolution on the exact wavelet2 decode of the "
                         "file, conditioned on its step code; trained against a "
                         f"{cfg['d_scales']}-scale LSGAN discriminator"),
        "generator_loss": {k: cfg[k] for k in ("w_mse", "w_ssim", "w_s2", "w_fm", "w_gan")},
        "config": cfg,
        "data": (f"{cfg['data']} (photos minus the held-back 5 %: {cfg['pairs']} random "
                 f"{cfg['pair_crop']} px crops, each wavelet2-coded at a random step code "
                 f"{cfg['step_lo']}..{cfg['step_hi']}; {cfg['crop']} px training windows); "
                 "never Kodak"),
        "steps": step, "batch": cfg["batch"],
        "training": {"wall_minutes": round(float(extra.get("seconds", 0)) / 60, 1),
                     "cpu_minutes": round(float(extra.get("cpu_seconds", 0)) / 60, 1),
                     "device": cfg.get("device", "cpu"), "threads": 1},
        "results": results,
    }
    return weights.save(export_arrays(gen, cfg), card, Path(folder), model_id)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gancomp.train.w2gen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--data", required=True, help="training photos (held-back ones are skipped)")
    p.add_argument("--out", required=True, help="run folder (checkpoint, loss.csv, pair cache)")
    p.add_argument("--minutes", type=float, help="wall-clock budget of this run")
    p.add_argument("--steps", type=int, help="total steps")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override one config value (e.g. --set w_s2=0)")
    p.add_argument("--export", help="write the weights + card into this folder and stop")
    p.add_argument("--model-id", default="gen-w2-cpu")
    p.add_argument("--default", action="store_true", help="mark the exported model default")
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.export:
        print(export(out / "checkpoint.safetensors", Path(a.export), a.model_id, a.default))
        return
    over = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    ckpt = out / "checkpoint.safetensors"
    base = gc.read_config(ckpt) if ckpt.is_file() and not a.fresh else \
        gc.merge_config(DEFAULTS, **PRESETS[a.preset])
    cfg = gc.merge_config(base, minutes=a.minutes, steps=a.steps, data=a.data,
                          device=a.device, preset=a.preset, **over)
    train(cfg, out, a.device, a.fresh)


if __name__ == "__main__":
    main()
