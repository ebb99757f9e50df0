"""Train the ``generative`` codec's model (seed 002 / HiFiC-style), then export it.

Per step, on a batch x of crops with a rate map t (one level per crop, or two levels split by
a random rectangle in a quarter of the batches, so spatially varying rate is trained too):

- rate-distortion path (encoder, hyperprior, MSE synthesis):
  mean(lambda(t) * 255^2 * (g_s(y_hat) - x)^2) + bpp, bpp = beta-weighted H(y_hat) + H(z_hat);
- generator on the detached latent and MSE reconstruction:
  w_mse * 255^2/1000 * MSE + w_ssim * (1 - MS-SSIM) + w_fm * feature matching + w_gan * LSGAN,
  the GAN terms switched on after ``gan_start`` of the run;
- multi-scale discriminator: least squares on real crops vs generator output.

``python -m gancomp.train.generative --preset cpu --data DIR --out runs/gen --minutes 40``
(resumes from runs/gen/checkpoint.safetensors; ``--export DIR --model-id ID`` writes the
weights + card). On CUDA it uses bf16 autocast and channels_last.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import gen_common as gc

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"N": 8, "M": 12, "Nh": 8, "gen_width": 4, "d_width": 4, "lambdas": [0.001, 0.01],
             "crop": 64, "per_image": 2, "batch": 2, "steps": 3, "gan_start": 0.3,
             "log_every": 1},
    "cpu": {"N": 64, "M": 128, "Nh": 64, "init": "hp-a1", "gen_width": 24, "d_width": 24,
            "crop": 128, "per_image": 8, "batch": 4, "steps": 100000, "gan_start": 0.15},
    "gpu": {"N": 64, "M": 128, "Nh": 64, "init": "hp-a1", "gen_width": 48, "gen_last": 24, "d_width": 48, "crop": 192,
            "per_image": 24, "batch": 16, "steps": 1000000, "gan_start": 0.2, "lr": 2e-4,
            "w_gan": 0.3, "w_mse": 0.5, "half": True},
    # generator only, on hp-a2's frozen transforms and entropy model at its five lowest
    # lambdas (the rate path is then exactly hp-a2's); half-resolution generator v2. The
    # loss weights are those of gen-a2-cpu's last phase (its card lists all three); w_s2
    # trains on SSIMULACRA2 itself (needs the ssimulacra2 package for its weights)
    "a2-cpu": {"N": 64, "M": 128, "Nh": 64, "init": "hp-a2", "freeze_rd": True,
               "lambdas": [0.00045, 0.0009, 0.0018, 0.0035, 0.0067], "gen_kind": 2,
               "gen_width": 24, "gen_last": 2, "d_width": 24, "crop": 128, "per_image": 8,
               "batch": 4, "steps": 100000, "gan_start": 0.0, "lr": 2e-4, "lr_final": 5e-5,
               "w_mse": 0.25, "w_ssim": 2.0, "w_tex": 1.0, "w_fm": 1.0, "w_gan": 0.2,
               "w_s2": 0.03},
    # 64x64 faces: hp-a2's transforms fine-tuned on faces at lower lambdas (a 64x64 face at
    # 0.25 bpp has 80 bytes of payload beside the 48-byte header), with the generator v2
    "faces-cpu": {"N": 64, "M": 128, "Nh": 64, "init": "hp-a2", "crop": 64, "faces": True,
                  "lambdas": [0.0001, 0.0003, 0.0009, 0.0027], "gen_kind": 2,
                  "gen_width": 24, "gen_last": 2, "d_width": 24, "batch": 16, "steps": 100000,
                  "gan_start": 0.3, "lr": 2e-4, "lr_final": 5e-5, "w_mse": 0.25, "w_ssim": 2.0,
                  "w_tex": 1.0, "w_fm": 1.0, "w_gan": 0.2, "w_s2": 0.03, "mixed_rate": 0.0},
    "faces-gpu": {"N": 64, "M": 64, "Nh": 48, "gen_width": 32, "gen_last": 24, "d_width": 32, "crop": 64,
                  "faces": True, "batch": 64, "steps": 1000000, "gan_start": 0.2,
                  "lambdas": [0.0004, 0.0015, 0.006], "w_gan": 0.3, "w_mse": 0.5, "half": True},
}

DEFAULTS: dict[str, Any] = {
    "N": 48, "M": 64, "Nh": 48, "init": "", "gen_width": 24, "d_width": 24, "d_scales": 2, "noise": True,
    "lambdas": [0.0001, 0.0003, 0.001, 0.004], "crop": 128, "per_image": 8, "faces": False,
    "batch": 6, "lr": 3e-4, "lr_final": 5e-5, "d_lr": 2e-4, "steps": 100000, "minutes": 0,
    "gan_start": 0.25, "w_mse": 1.0, "w_ssim": 1.0, "w_fm": 2.0, "w_gan": 0.15,
    "mixed_rate": 0.25, "seed": 0, "log_every": 20, "checkpoint_minutes": 4, "half": False,
    "gen_kind": 1, "freeze_rd": False, "w_tex": 0.0, "w_s2": 0.0,
}


def build(cfg: dict[str, Any]):
    from ..nn.generative import GenerativeModel

    return GenerativeModel(cfg["N"], cfg["M"], cfg["Nh"], tuple(cfg["lambdas"]),
                           cfg["gen_width"], cfg["noise"], cfg.get("gen_last", 0),
                           cfg.get("gen_kind", 1))


def init_from_hyperprior(model, model_id: str) -> str:
    """Start encoder, MSE synthesis, h_a and h_s from a shipped ``hyperprior`` model of the
    same shape (h_s is rebuilt from its integer layers; gains are matched to our lambdas,
    extrapolating below its lowest lambda). Returns the source's SHA-256."""
    import torch

    from .. import weights

    arrays, card = weights.load(model_id)
    sd = model.state_dict()
    new = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in arrays.items()
           if k.startswith(("g_a.", "g_s.", "h_a.")) and k in sd and sd[k].shape == v.shape}
    convs = [k[:-7] for k in sd if k.startswith("h_s.") and k.endswith(".weight")]
    n = len([k for k in arrays if k.startswith("hs_int.") and k.endswith(".meta")])
    for i, name in enumerate(convs[:n]):
        w, b, meta = (arrays[f"hs_int.{i}.{x}"] for x in ("weight", "bias", "meta"))
        up, _, _, _, in_frac, w_frac = (int(v) for v in meta[:6])
        wf = w.astype(np.float64) / 2.0 ** w_frac
        if up > 1:  # conv layout back to ConvTranspose2d's (I, O, k, k), unflipped
            wf = wf[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        if sd[f"{name}.weight"].shape == wf.shape:
            new[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(wf, np.float32))
            new[f"{name}.bias"] = torch.from_numpy((b / 2.0 ** (in_frac + w_frac)).astype(np.float32))
    hp_ll = arrays["log_lambdas"].astype(np.float64)
    for key, sign in (("log_gain", 1.0), ("log_inv_gain", -1.0)):
        table = arrays[key].astype(np.float64)
        if table.shape[1] != model.M:
            continue
        rows = []
        for ll in model.log_lambdas.double().numpy():
            t = np.interp(ll, hp_ll, np.arange(len(hp_ll)))
            i = min(int(t), len(hp_ll) - 2)
            row = table[i] * (1 - (t - i)) + table[i + 1] * (t - i)
            rows.append(row + sign * 0.5 * (ll - np.clip(ll, hp_ll[0], hp_ll[-1])))
        new[key] = torch.from_numpy(np.stack(rows).astype(np.float32))
    model.load_state_dict(new, strict=False)
    return card.sha256


def rate_map(b: int, h: int, w: int, levels: int, mixed: float, rng: np.random.Generator):
    """(B, h, w) rate positions: one per crop, or two split by a random rectangle."""
    t = np.repeat(rng.uniform(0, levels - 1, (b, 1, 1)), h, 1).repeat(w, 2)
    if rng.random() < mixed:
        for i in range(b):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            y1, x1 = rng.integers(y0 + 1, h + 1), rng.integers(x0 + 1, w + 1)
            t[i, y0:y1, x0:x1] = rng.uniform(0, levels - 1)
    return t.astype(np.float32)


def train(cfg: dict[str, Any], out: Path, device_name: str = "cpu", fresh: bool = False,
          quiet: bool = False) -> Path:
    """Train per ``cfg`` into ``out`` (checkpoint, loss.csv); returns the checkpoint path."""
    import torch
    import torch.nn.functional as F

    from ..nn.generative import DOWN, Discriminator, ms_ssim_loss, texture_loss
    from ..nn.ssimulacra2_torch import loss as s2_loss

    device = gc.setup_device(device_name, cfg.get("threads", 1))
    torch.manual_seed(cfg["seed"])
    out.mkdir(parents=True, exist_ok=True)
    crops = gc.crops_for(cfg["data"], cfg["crop"], cfg["per_image"], cfg["seed"], out,
                         cfg["faces"])
    model = build(cfg)
    if cfg.get("init") and (fresh or not (out / "checkpoint.safetensors").is_file()):
        from ..errors import ModelError

        try:
            cfg["init_sha256"] = init_from_hyperprior(model, cfg["init"])
        except (ModelError, KeyError, ValueError) as exc:  # no such model: start from scratch
            print(f"not initialized from {cfg['init']}: {exc}", flush=True)
            cfg["init"] = ""
    model = model.to(device)
    disc = Discriminator(cfg["d_scales"], cfg["d_width"]).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        disc = disc.to(memory_format=torch.channels_last)
    frozen = bool(cfg.get("freeze_rd"))
    rd_params = [p for n, p in model.named_parameters() if not n.startswith("gen.")]
    if frozen:  # generator only: the rate path stays exactly the initial model's
        for p in rd_params:
            p.requires_grad_(False)
    opt = torch.optim.Adam(rd_params, lr=cfg["lr"])
    opt_g = torch.optim.Adam(model.gen.parameters(), lr=cfg["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg["d_lr"], betas=(0.5, 0.999))
    mods, opts = {"model": model, "disc": disc}, {"rd": opt, "g": opt_g, "d": opt_d}
    ckpt = out / "checkpoint.safetensors"
    step, extra = (0, {})
    if ckpt.is_file() and not fresh:
        step, extra = gc.load_checkpoint(ckpt, mods, opts)
    sched = gc.Schedule(cfg["steps"], cfg["minutes"])
    seconds_before = float(extra.get("seconds", 0.0))
    rng = np.random.default_rng(cfg["seed"] + step)
    fields = ["lr", "loss_rd", "bpp", "psnr_mse", "psnr_gan", "msssim_gan", "g_adv", "fm", "d",
              "tex"]
    log = gc.LossLog(out / "loss.csv", fields, fresh or step == 0)
    last_ckpt = time.time()
    levels = model.levels
    model.train()
    disc.train()
    try:
        while not sched.done(step):
            frac = sched.frac(step)
            lr = gc.lr_at(cfg["lr"], cfg["lr_final"], frac)
            for o in (opt, opt_g):
                for g in o.param_groups:
                    g["lr"] = lr
            x = torch.from_numpy(gc.batch(crops, cfg["batch"], rng)).to(device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            hl, wl = x.shape[2] // DOWN, x.shape[3] // DOWN
            t = torch.from_numpy(rate_map(x.shape[0], hl, wl, levels, cfg["mixed_rate"], rng)).to(device)
            gan_on = frac >= cfg["gan_start"]
            if frozen:
                model.train(False)  # true rounding, as in decoding
            with gc.autocast(device), torch.set_grad_enabled(not frozen):
                o = model(x, t)
                x_mse = o["x_mse"].float()
                n_pix = x.shape[2] * x.shape[3]
                bits = (-torch.log2(o["y_lik"].clamp_min(1e-9))).sum((1, 2, 3)) + \
                    (-torch.log2(o["z_lik"].clamp_min(1e-9))).sum((1, 2, 3))
                bpp = bits / n_pix
                lam_px = model.lam(t).repeat_interleave(DOWN, 1).repeat_interleave(DOWN, 2)
                err = ((x_mse - x) ** 2).mean(1)
                loss_rd = (lam_px * 255 ** 2 * err).mean() + bpp.mean()
            if not frozen:
                opt.zero_grad(set_to_none=True)
                loss_rd.backward()
                torch.nn.utils.clip_grad_norm_(rd_params, 1.0)
                opt.step()

            y_hat, x_in = o["y_hat"].detach(), x_mse.detach().clamp(0, 1)
            with gc.autocast(device):
                x_gan = model.gen(y_hat, x_in).float()
                mse_g = F.mse_loss(x_gan, x)
                ssim_l = ms_ssim_loss(x_gan.clamp(0, 1), x)
                loss_g = cfg["w_mse"] * 255 ** 2 / 1000 * mse_g + cfg["w_ssim"] * ssim_l
                tex = texture_loss(x_gan, x) if cfg.get("w_tex") else torch.zeros((), device=device)
                loss_g = loss_g + cfg.get("w_tex", 0.0) * tex
                if cfg.get("w_s2"):  # the evaluation metric itself (see nn/ssimulacra2_torch.py)
                    # photos: crops stand in for large images (canonical weights); faces
                    # are scored at their own 64 px size (the reference's shifted weights)
                    loss_g = loss_g + cfg["w_s2"] * s2_loss(x, x_gan.clamp(0, 1),
                                                            canonical=not cfg["faces"])
                adv = fm = torch.zeros((), device=device)
                if gan_on:
                    adv, fm = gc.lsgan_generator_losses(disc, x_gan, x)
                    loss_g = loss_g + cfg["w_gan"] * adv + cfg["w_fm"] * fm
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(model.gen.parameters(), 1.0)
            opt_g.step()

            d_loss = torch.zeros(())
            if gan_on:
                with gc.autocast(device):
                    real = disc(x)
                    fake = disc(x_gan.detach())
                    d_loss = gc.lsgan_discriminator_loss(real, fake)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            step += 1
            log.add(lr=lr, loss_rd=loss_rd.item(), bpp=bpp.mean().item(),
                    psnr_mse=gc.psnr_of(F.mse_loss(x_mse.clamp(0, 1), x).item()),
                    psnr_gan=gc.psnr_of(mse_g.item()), msssim_gan=1 - ssim_l.item(),
                    g_adv=adv.item(), fm=fm.item(), d=d_loss.item(), tex=tex.item())
            if step % cfg["log_every"] == 0:
                m = log.flush(step, seconds_before + sched.elapsed())
                if not quiet:
                    print(f"step {step} {sched.elapsed():.0f}s bpp {m['bpp']:.3f} "
                          f"psnr mse {m['psnr_mse']:.2f} gan {m['psnr_gan']:.2f} "
                          f"adv {m['g_adv']:.3f} d {m['d']:.3f} tex {m['tex']:.4f}", flush=True)
            if time.time() - last_ckpt > 60 * cfg["checkpoint_minutes"]:
                gc.save_checkpoint(ckpt, mods, opts, step, cfg,
                                   {"seconds": seconds_before + sched.elapsed()})
                last_ckpt = time.time()
    finally:
        log.close()
        gc.save_checkpoint(ckpt, mods, opts, step, cfg, {"seconds": seconds_before + sched.elapsed()})
    return ckpt


def export_arrays(model, half: bool, cfg: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Shipped arrays: float transforms (fp16 convolution kernels when ``half``), integer
    hyper-synthesis and integer CDF tables (the hyperprior codec's exporters). A model trained
    with ``freeze_rd`` on a hyperprior model takes that model's integer h_s, tables and scale
    offsets unchanged (its rate path is exactly the source's at the shared lambdas)."""
    from .export import gaussian_tables, integer_hs, prior_tables

    model = model.float().cpu().to(memory_format=__import__("torch").contiguous_format)
    arrays: dict[str, np.ndarray] = {}
    for k, v in model.state_dict().items():
        if k.startswith(("g_a.", "g_s.", "h_a.", "gen.")) or k in ("log_gain", "log_inv_gain",
                                                                    "log_lambdas"):
            a = v.detach().contiguous().numpy()
            arrays[k] = a.astype(np.float16) if half and a.ndim == 4 else a.astype(np.float32)
    for i, layer in enumerate(integer_hs(model)):
        assert np.abs(layer.weight).max() < 2 ** 15  # quantize_conv keeps 15-bit weights
        # C order: transposed layers come out of quantize_conv as non-contiguous views, and
        # safetensors writes the raw buffer (the array would be stored transposed)
        arrays[f"hs_int.{i}.weight"] = np.ascontiguousarray(layer.weight).astype(np.int16)
        arrays[f"hs_int.{i}.bias"] = layer.bias.astype(np.int64)
        arrays[f"hs_int.{i}.meta"] = layer.meta()
    yf, yo, yb = gaussian_tables()
    arrays["y_freqs"], arrays["y_offsets"], arrays["scale_bounds"] = yf.astype(np.int32), yo, yb
    zf, zo = prior_tables(model)
    arrays["z_freqs"], arrays["z_offsets"] = zf.astype(np.int32), zo
    gen = model.gen
    if getattr(model, "gen_kind", 1) == 1:
        arch = [model.N, model.M, model.Nh, gen.head.out_channels // 4, int(gen.noise),
                gen.join.out_channels]
    else:
        arch = [model.N, model.M, model.Nh, gen.head.out_channels // 4, int(gen.noise),
                len(gen.res), model.gen_kind]
    arrays["arch"] = np.array(arch, dtype=np.int64)
    if cfg and cfg.get("freeze_rd") and cfg.get("init"):
        arrays.update(_source_tables(cfg["init"], model))
    return arrays


def _source_tables(model_id: str, model) -> dict[str, np.ndarray]:
    """Integer h_s, CDF tables and per-level scale offsets of hyperprior ``model_id`` at
    ``model``'s lambdas (each must be one of the source's)."""
    from .. import weights

    src, _ = weights.load(model_id)
    out = {k: v for k, v in src.items() if k.startswith("hs_int.") or k in (
        "y_freqs", "y_offsets", "scale_bounds", "z_freqs", "z_offsets")}
    src_ll = src["log_lambdas"].astype(np.float64)
    rows = []
    for ll in model.log_lambdas.double().cpu().numpy():
        i = int(np.argmin(np.abs(src_ll - ll)))
        if abs(src_ll[i] - ll) > 1e-5:
            raise ValueError(f"lambda {math.exp(ll):g} is not one of {model_id}'s")
        rows.append(i)
    if "scale_offsets" in src:
        out["scale_offsets"] = np.asarray(src["scale_offsets"], np.int64).reshape(
            src_ll.size, -1)[rows]
    return out


def export(ckpt: Path, folder: Path, model_id: str, default: bool = False,
           results: Any = None, strength: float | None = None) -> Path:
    """Write ``folder/model_id.safetensors`` + card from a checkpoint."""
    from .. import weights

    cfg = gc.read_config(ckpt)
    model = build(cfg)
    step, extra = gc.load_checkpoint(ckpt, {"model": model})
    model.eval()
    card = {
        "id": model_id, "codec": "generative", "default": default,
        "architecture": (f"encoder 4x conv5 s2 + GDN (N={cfg['N']}, M={cfg['M']}), mean-scale "
                         f"hyperprior (N_h={cfg['Nh']}) with gain units over lambdas "
                         f"{cfg['lambdas']} and integer h_s; decoders: MSE synthesis (IGDN) and "
                         f"GAN generator v{cfg.get('gen_kind', 1)} (width {cfg['gen_width']}, "
                         f"noise={cfg['noise']}{', half resolution' if cfg.get('gen_kind', 1) == 2 else ''}) "
                         f"refining it; trained against a {cfg['d_scales']}-scale LSGAN discriminator"
                         + (f"; rate path frozen at {cfg['init']}'s" if cfg.get("freeze_rd") else "")),
        "generator_loss": {k: cfg.get(k, 0.0) for k in ("w_mse", "w_ssim", "w_tex", "w_fm",
                                                        "w_gan", "w_s2")},
        "config": cfg,
        "data": (f"{cfg['data']} ({'faces, last 500 sorted ids held out' if cfg['faces'] else 'photos minus the held-back 5 %'}"
                 f", {cfg['crop']}px crops); never Kodak"),
        "steps": step, "batch": cfg["batch"],
        "training": {"wall_minutes": round(float(extra.get("seconds", 0)) / 60, 1),
                     "device": cfg.get("device", "cpu")},
        "results": results,
    }
    arrays = export_arrays(model, bool(cfg.get("half")), cfg)
    if strength is not None:
        arrays["gen_strength"] = np.array([strength], np.float64)
        card["gen_strength"] = strength
    return weights.save(arrays, card, Path(folder), model_id)


def calibrate(ckpt: Path, data: str, crops: int = 8, size: int = 256, faces: bool = False,
              strengths: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5),
              qualities: tuple[float, ...] = (0.0, 25.0), seed: int = 7) -> dict[str, Any]:
    """Mean SSIMULACRA2 (and PSNR) of ``x_mse + s * (gen - x_mse)`` for each strength ``s`` on
    training crops (never Kodak, never held-out photos/faces), with true rounding of the
    latent (float32, not the codec's float64 path). ``s = 0`` is the MSE decoder; the best
    ``s`` is the decoder-side strength shipped with the weights."""
    import torch

    from ..benchmarks.generative import ssimulacra2
    from ..metrics import psnr

    cfg = gc.read_config(ckpt)
    model = build(cfg)
    gc.load_checkpoint(ckpt, {"model": model})
    model.eval()
    if faces:
        files = gc.training_files(data, True)
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(files), crops, replace=False)
        from PIL import Image

        arr = np.stack([np.asarray(Image.open(files[i]).convert("RGB")) for i in pick])
    else:
        from .data import extract_crops

        files = gc.training_files(data)
        rng = np.random.default_rng(seed)
        pick = sorted(rng.choice(len(files), crops, replace=False))
        arr = extract_crops([files[i] for i in pick], size, 1, seed)
    res: dict[str, Any] = {"crops": int(arr.shape[0]), "size": int(arr.shape[1]), "rows": []}
    g = torch.Generator().manual_seed(seed)
    for q in qualities:
        sums = {s: [0.0, 0.0] for s in strengths}
        for img in arr:
            x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)[None]
            t = torch.full((1, x.shape[2] // 16, x.shape[3] // 16), q / 100 * (model.levels - 1))
            with torch.no_grad():
                o = model(x, t)
                x_mse = o["x_mse"].clamp(0, 1)
                noise = torch.randn(model.gen.noise_shape(x_mse), generator=g)
                r = model.gen(o["y_hat"], x_mse, noise) - x_mse
            for s in strengths:
                rec = (x_mse + s * r).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
                rec = np.clip(np.rint(rec * 255), 0, 255).astype(np.uint8)
                sums[s][0] += ssimulacra2(img, rec) / len(arr)
                sums[s][1] += psnr(img, rec) / len(arr)
        for s in strengths:
            res["rows"].append({"quality": q, "strength": s, "ssimulacra2": round(sums[s][0], 2),
                                "psnr": round(sums[s][1], 2)})
    best = max(strengths, key=lambda s: sum(r["ssimulacra2"] for r in res["rows"]
                                            if r["strength"] == s))
    res["best_strength"] = best
    return res


def _estimated_bits(arrays: dict, images: list[np.ndarray]) -> float:
    """Bits the integer tables would spend on the y latents of ``images`` (quality 50)."""
    import torch

    from ..codecs.generative import _Runtime

    rt = _Runtime(arrays)
    total = 0.0
    for img in images:
        h, w = (-(-n // 64) * 64 for n in img.shape[:2])
        part = np.pad(img, ((0, h - img.shape[0]), (0, w - img.shape[1]), (0, 0)), mode="edge")
        g, _ = rt.gains(np.full((h // 16, w // 16), 0.5 * (rt.model.levels - 1)))
        with torch.no_grad():
            x = torch.from_numpy(part.transpose(2, 0, 1).astype(np.float64) / 255)[None]
            y = rt.model.g_a(x) * g
            z = torch.round(rt.model.h_a(y))[0].numpy().astype(np.int64)
        mean_int, idx = rt.entropy_params(z)
        sym = np.rint(y[0].numpy() - mean_int / 256.0).astype(np.int64)
        col = np.clip(sym - rt.y_offsets[idx], 0, rt.y_freqs.shape[1] - 1)
        f = np.maximum(rt.y_freqs[idx, col].astype(np.float64), 0.5)  # 0: padding columns
        total += float(-np.log2(f / rt.y_freqs[idx].sum(-1)).sum())
    return total


def repair_layout(path: Path, images: list[np.ndarray]) -> bool:
    """Weights exported before the C-order fix hold transposed layers of the integer h_s with
    swapped channel axes. Re-lay them if that makes the tables code ``images`` in clearly
    fewer bits; rewrite the file and its card (new SHA-256). Returns whether it changed."""
    from safetensors.numpy import load_file

    from .. import weights

    arrays = dict(load_file(str(path)))
    fixed = dict(arrays)
    for i in range(len([k for k in arrays if k.startswith("hs_int.") and k.endswith(".meta")])):
        if int(arrays[f"hs_int.{i}.meta"][0]) > 1:
            w = arrays[f"hs_int.{i}.weight"]
            o, c, k, _ = w.shape
            fixed[f"hs_int.{i}.weight"] = np.ascontiguousarray(w.reshape(c, o, k, k).transpose(1, 0, 2, 3))
    before, after = _estimated_bits(arrays, images), _estimated_bits(fixed, images)
    print(f"{path.name}: {before:.0f} bits as stored, {after:.0f} re-laid")
    if after > 0.95 * before:
        return False
    card = json.loads(path.with_suffix(".json").read_text())
    card["repaired"] = "integer h_s re-laid to C order (exported before the fix)"
    weights.save(fixed, card, path.parent, path.stem)
    return True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gancomp.train.generative", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    ap.add_argument("--data", required=True, help="folder of training images (never Kodak)")
    ap.add_argument("--out", required=True, help="run folder (checkpoint, loss.csv, crop cache)")
    ap.add_argument("--minutes", type=float, help="wall-clock budget of this run")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--crop", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--config", help="JSON overrides")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--export", help="after training, write weights + card into this folder")
    ap.add_argument("--model-id", default="gen-cpu")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--calibrate", type=int, default=0, metavar="N",
                    help="score generator strengths by SSIMULACRA2 on N training crops "
                    "(written to OUT/calibration.json; the best ships with --export)")
    ap.add_argument("--repair", help="re-lay the integer h_s of this weights file if needed "
                    "(files exported before the C-order fix), judged on --data's images")
    a = ap.parse_args(argv)
    if a.repair:
        from PIL import Image

        imgs = [np.asarray(Image.open(f).convert("RGB")) for f in gc.training_files(a.data)[:4]]
        print("repaired" if repair_layout(Path(a.repair), imgs) else "left as it is")
        return
    cfg = dict(DEFAULTS)
    cfg.update(PRESETS[a.preset])
    cfg.update(json.loads(a.config) if a.config else {})
    cfg = gc.merge_config(cfg, data=str(a.data), minutes=a.minutes, steps=a.steps, crop=a.crop,
                          batch=a.batch, device=a.device, preset=a.preset)
    ckpt = train(cfg, Path(a.out), a.device, a.fresh, a.quiet)
    strength = None
    if a.calibrate:
        cal = calibrate(ckpt, str(a.data), a.calibrate, faces=bool(cfg["faces"]))
        (Path(a.out) / "calibration.json").write_text(json.dumps(cal, indent=1))
        print(json.dumps(cal))
        strength = cal["best_strength"]
    if a.export:
        print("exported", export(ckpt, Path(a.export), a.model_id, strength=strength))


if __name__ == "__main__":
    main()
