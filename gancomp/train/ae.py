"""Training of the ``ae`` codec family on 32x32 blocks, in five phases sharing one clock:

1. ``base``: the variable-rate block autoencoder (rate + lambda * 255^2 * MSE, lambda drawn
   per sample over the trained levels);
2. ``up``: the generator of ``--down 2`` (seed 001's "generator decoding a downsampled
   image"): it maps the frozen base's decoding of a 2x box-downsampled 64x64 crop back to
   full resolution, trained on MSE (the coarse first pass of progressive files);
3. ``res``: the residual autoencoder of ``--passes`` (CNN-RNN-AE): a copy of the base model
   fine-tuned on residuals ``0.5 + RES_SCALE * (x - x1)`` of the frozen base's reconstruction
   x1 (half the steps: x1 of the downsampled first pass), its distortion in image units;
4. ``gan``: the GAN-AE decoder of ``--decoder gan``: the base synthesis fine-tuned with the
   encoder frozen on lambda * 255^2 * MSE plus a least-squares GAN loss (Mao et al. 2017)
   from a patch discriminator;
5. ``upgan``: the adversarial upsampler of ``upsampler=gan`` (seed 001's "generator decoding a
   downsampled image" trained as a GAN): a copy of ``up`` fine-tuned on the same first passes
   with 1000 * MSE plus a least-squares GAN loss and discriminator feature matching (the
   losses of :mod:`gancomp.train.gen_common`, through the update the GAN-AE decoder uses).

``python -m gancomp.train.ae --data DIR --out DIR --minutes M [--device cuda]`` trains for M
wall minutes (split 45/20/15/10/10 over the phases), checkpoints (safetensors) and resumes, logs
losses to loss.csv and exports ``<model-id>.safetensors`` + card into --out. ``--init
MODEL.safetensors --phases up=0.6,res=0.4`` continues an exported model with only the named
phases (e.g. ae-v2: ae-v1 plus the ``up`` generator and a residual model retrained; ae-v3:
ae-v2's base trained on with config ``cpu-hi``, a high-rate emphasis on 64x64 crops, then the
other phases adapted to it; ae-v4: ae-v3 plus ``upgan``). Cards record wall and CPU seconds
per phase.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

RES_SCALE = 4.0
# the adversarial upsampler's loss weights and learning rate (configs of older runs lack them)
UPG_DEFAULTS = {"upg_adv": 0.3, "upg_fm": 2.0, "upg_lr": 2e-4}
CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {"N": 8, "C": 12, "lambdas": [0.01, 0.1], "batch": 4, "crops_per_image": 2,
             "max_images": 4, "lr": 1e-3, "adv": 0.05, "up_N": 8, "up_depth": 3, "up_crops": 2,
             "upg_adv": 0.1, "upg_fm": 1.0, "upg_lr": 2e-4},
    "cpu": {"N": 64, "C": 48, "lambdas": [0.003, 0.01, 0.03, 0.1, 0.3], "batch": 32,
            "crops_per_image": 64, "max_images": 0, "lr": 1e-3, "adv": 0.05,
            "up_N": 48, "up_depth": 5, "up_crops": 24, **UPG_DEFAULTS},
    # continuation with a high-rate emphasis (ae-v3): 3/4 of each base batch draws its rate
    # position from [t_lo, top] (lambda 0.01-0.3, about 1-4 bpp on Kodak), a quarter from the
    # whole range so the low rates of the progressive first pass are kept; 64x64 crops
    # (batch / 4: the same pixels per step) so fewer outputs sit at a zero-padded border
    "cpu-hi": {"N": 64, "C": 48, "lambdas": [0.003, 0.01, 0.03, 0.1, 0.3], "batch": 32,
               "crops_per_image": 64, "max_images": 0, "lr": 5e-4, "adv": 0.05,
               "up_N": 48, "up_depth": 5, "up_crops": 24, "t_lo": 1.0, "hi_frac": 0.75, "base_crop": 64,
               **UPG_DEFAULTS},
    "gpu": {"N": 64, "C": 48, "lambdas": [0.003, 0.01, 0.03, 0.1, 0.3], "batch": 256,
            "crops_per_image": 150, "max_images": 0, "lr": 1e-3, "adv": 0.05,
            "up_N": 48, "up_depth": 5, "up_crops": 64, **UPG_DEFAULTS},
}
PHASES = ("base", "up", "res", "gan", "upgan")
SHARE = {"base": 0.45, "up": 0.2, "res": 0.15, "gan": 0.1, "upgan": 0.1}
MODELS = ("base", "res", "gan", "disc", "up", "upg", "updisc")
OPTIONAL = ("up", "upg", "updisc")          # absent from checkpoints of older runs


def load_crops(data: str, per_image: int, max_images: int, cache: Path, seed: int = 0,
               size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8 training blocks from the training split of ``data`` (held-back
    photos and Kodak excluded), cached as .npy in ``cache``."""
    import hashlib

    from .data import extract_crops, list_images, split_held_out

    files, _ = split_held_out(list_images(data))
    if max_images:
        files = files[:max_images]
    key = hashlib.sha256(("\n".join(map(str, files)) + f"{per_image}").encode()).hexdigest()[:12]
    path = cache / f"blocks{size}_{key}.npy"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        arr = extract_crops(files, size, per_image, seed)
        np.save(path.with_suffix(".tmp.npy"), arr)
        path.with_suffix(".tmp.npy").replace(path)
    return np.load(path)


def build(cfg: dict[str, Any]):
    """Base, residual and GAN models, the GAN decoder's discriminator, the upsampling
    generator, the adversarial upsampler and its discriminator (the order of :data:`MODELS`)."""
    from ..nn.ae import BlockAE, PatchD, Upsampler

    lam = tuple(cfg["lambdas"])
    up_N, up_depth = cfg.get("up_N", 48), cfg.get("up_depth", 5)
    return (BlockAE(cfg["N"], cfg["C"], lam), BlockAE(cfg["N"], cfg["C"], lam),
            BlockAE(cfg["N"], cfg["C"], lam), PatchD(max(8, cfg["N"] // 2)),
            Upsampler(up_N, up_depth), Upsampler(up_N, up_depth), PatchD(max(8, cfg["N"] // 2)))


def _save(path: Path, models, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    state = {}
    for name, m in zip(MODELS, models):
        state.update({f"{name}.{k}": v.detach().float().cpu().contiguous()
                      for k, v in m.state_dict().items()})
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def _load(path: Path, models) -> dict[str, Any]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    state = load_file(str(path))
    for name, m in zip(MODELS, models):
        part = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        if part or name not in OPTIONAL:
            m.load_state_dict(part)
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["meta"])


def _batch(crops: np.ndarray, size: int, rng: np.random.Generator, device: str):
    import torch

    from .data import batch

    x = torch.from_numpy(batch(crops, size, rng)).to(device)
    return x.contiguous(memory_format=torch.channels_last) if device == "cuda" else x


def rate_positions(B: int, levels: int, t_lo: float = 0.0, hi_frac: float = 0.0,
                   device: str = "cpu"):
    """Rate positions t (B,) of a base batch: uniform over [0, levels-1], except the first
    ``round(hi_frac * B)`` drawn from [t_lo, levels-1] (a high-rate emphasis)."""
    import torch

    top = levels - 1
    t = torch.rand(B, device=device) * top
    k = int(round(hi_frac * B))
    if k and t_lo > 0:
        t[:k] = t_lo + torch.rand(k, device=device) * (top - t_lo)
    return t


def step_base(model, x, opt, amp, t_lo: float = 0.0, hi_frac: float = 0.0):
    import torch

    t = rate_positions(x.shape[0], model.levels, t_lo, hi_frac, str(x.device))
    with amp():
        out = model(x, t)
    mse = ((out["x_hat"].float() - x) ** 2).mean((1, 2, 3))
    bpp = out["bits"] / (x.shape[2] * x.shape[3])
    loss = (model.lam(t) * 255 ** 2 * mse + bpp).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return float(loss.detach()), float(bpp.mean().detach()), float(mse.mean().detach())


def first_pass_down(base, up, x, amp):
    """The 8-bit reconstruction of the ``down=2`` first pass of crops ``x`` (no gradients):
    the frozen base codes the box-downsampled crop, ``up`` decodes it to full size."""
    import torch

    from ..nn.ae import downsample

    with torch.no_grad():
        t = torch.rand(x.shape[0], device=x.device) * (base.levels - 1)
        with amp():
            z = base(downsample(x), t)["x_hat"].float()
        z = torch.round(z.clamp(0, 1) * 255) / 255
    return z


def step_up(base, up, x, opt, amp):
    """One MSE step of the upsampling generator on 64x64 crops."""
    import torch

    z = first_pass_down(base, up, x, amp)
    with amp():
        out = up(z).float()
    mse = ((out - x) ** 2).mean()
    opt.zero_grad(set_to_none=True)
    (1000 * mse).backward()
    torch.nn.utils.clip_grad_norm_(up.parameters(), 5.0)
    opt.step()
    return float(mse.detach()), 0.0, float(mse.detach())


def step_res(base, res, x, opt, amp, up=None):
    """One step of the residual AE on the residual of a first pass: the base's reconstruction,
    or (``up`` given, ``x`` 64x64 crops) the downsampled first pass decoded by ``up``."""
    import torch

    B = x.shape[0]
    with torch.no_grad():
        if up is None:
            t0 = torch.rand(B, device=x.device) * (base.levels - 1)
            with amp():
                x1 = base(x, t0)["x_hat"].float()
        else:
            with amp():
                x1 = up(first_pass_down(base, up, x, amp)).float()
        x1 = torch.round(x1.clamp(0, 1) * 255) / 255
    u = 0.5 + RES_SCALE * (x - x1)
    t = torch.rand(B, device=x.device) * (res.levels - 1)
    with amp():
        out = res(u, t)
    mse = ((out["x_hat"].float() - u) ** 2).mean((1, 2, 3)) / RES_SCALE ** 2
    bpp = out["bits"] / (x.shape[2] * x.shape[3])
    loss = (res.lam(t) * 255 ** 2 * mse + bpp).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(res.parameters(), 5.0)
    opt.step()
    return float(loss.detach()), float(bpp.mean().detach()), float(mse.mean().detach())


def adversarial_update(disc, opt, opt_d, fake, real, rec_loss, adv: float, fm_w: float, amp,
                       clip: float = 0.0):
    """One generator step on ``rec_loss + adv * LSGAN + fm_w * feature matching`` (the losses
    of :mod:`gancomp.train.gen_common`; a :class:`~gancomp.nn.ae.PatchD` is one scale), then
    one least-squares discriminator step. Shared by the GAN-AE decoder and the adversarial
    upsampler. Returns (generator loss, adversarial term)."""
    import torch

    from . import gen_common as gc

    with amp():
        g_adv, fm = gc.lsgan_generator_losses(disc.scales, fake, real)
    loss = rec_loss + adv * g_adv + (fm_w * fm if fm_w else 0.0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_([q for g in opt.param_groups for q in g["params"]], clip)
    opt.step()
    with amp():
        d_loss = gc.lsgan_discriminator_loss(disc.scales(real), disc.scales(fake.detach()))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return loss, g_adv


def step_gan(gan, disc, x, opt, opt_d, adv, amp):
    import torch

    t = torch.rand(x.shape[0], device=x.device) * (gan.levels - 1)
    with torch.no_grad():
        g, ig = gan.gains(t)
        with amp():
            y = torch.round(gan.analysis(x).float() * g)
    with amp():
        x_hat = gan.g_s(y * ig).float()
    mse = ((x_hat - x) ** 2).mean((1, 2, 3))
    loss, g_adv = adversarial_update(disc, opt, opt_d, x_hat, x,
                                     (gan.lam(t) * 255 ** 2 * mse).mean(), adv, 0.0, amp)
    return float(loss.detach()), float(g_adv.detach()), float(mse.mean().detach())


def step_upgan(base, upg, disc, x, opt, opt_d, cfg: dict[str, Any], amp):
    """One step of the adversarial upsampler on 64x64 crops: the L2 loss of :func:`step_up`
    plus the least-squares GAN and feature-matching terms."""
    z = first_pass_down(base, upg, x, amp)
    with amp():
        out = upg(z).float()
    mse = ((out - x) ** 2).mean()
    c = {**UPG_DEFAULTS, **cfg}
    loss, g_adv = adversarial_update(disc, opt, opt_d, out, x, 1000 * mse, c["upg_adv"],
                                     c["upg_fm"], amp, clip=5.0)
    return float(loss.detach()), float(g_adv.detach()), float(mse.detach())


def sync_encoder(gan, base) -> None:
    """Copy the base's analysis and gain tables into the GAN model (its encoder is frozen)."""
    import torch

    with torch.no_grad():
        gan.g_a.load_state_dict(base.g_a.state_dict())
        gan.skip_a.load_state_dict(base.skip_a.state_dict())
        for k in ("log_gain", "log_inv_gain", "log_scale"):
            getattr(gan, k).copy_(getattr(base, k))


def load_exported(path: Path, models) -> set[str]:
    """Initialise base, res, gan.g_s (and up, upg when present) from an exported model file;
    returns the prefixes found."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    base, res, gan, _, up, upg, _ = models
    found = set()
    for name, m in (("base.", base), ("res.", res), ("gan.g_s.", gan.g_s), ("up.", up),
                    ("upg.", upg)):
        part = {k[len(name):]: v for k, v in state.items() if k.startswith(name)}
        if part:
            m.load_state_dict(part)
            found.add(name)
    sync_encoder(gan, base)
    return found


def train(cfg: dict[str, Any], data: str, out: Path, minutes: float, device: str = "cpu",
          steps: int = 0, model_id: str = "ae-v1", fresh: bool = False, log=print,
          init: Path | None = None, share: dict[str, float] | None = None) -> Path:
    """Run (or resume) the phases named in ``share`` (default all, :data:`SHARE`), starting
    from the exported model ``init`` when given, then export weights + card into ``out``."""
    import contextlib

    import torch

    torch.set_num_threads(1) if device == "cpu" else None
    torch.manual_seed(int(cfg.get("seed", 0)))        # fresh runs are reproducible
    share = dict(share or SHARE)
    phases = [p for p in PHASES if share.get(p)]
    out.mkdir(parents=True, exist_ok=True)
    crops = load_crops(data, cfg["crops_per_image"], cfg["max_images"], out / "cache")
    big = load_crops(data, cfg["up_crops"], cfg["max_images"], out / "cache", seed=1, size=64) \
        if {"up", "res", "upgan"} & set(phases) or cfg.get("base_crop", 32) == 64 else None
    models = build(cfg)
    base, res, gan, disc, up, upg, updisc = models
    ckpt = out / "checkpoint.safetensors"
    meta = {"phase": phases[0], "steps": {p: 0 for p in PHASES},
            "seconds": {p: 0.0 for p in PHASES}, "cpu_seconds": {p: 0.0 for p in PHASES},
            "init": str(init) if init else None}
    if ckpt.is_file() and not fresh:
        meta = _load(ckpt, models)
        log(f"resumed from {ckpt}: {meta}")
    elif init is not None:
        meta["upg_init"] = "upg." in load_exported(init, models)
        log(f"initialised from {init}")
    meta.setdefault("cpu_seconds", {})
    for p in PHASES:                                   # checkpoints of older runs
        meta["steps"].setdefault(p, 0)
        meta["seconds"].setdefault(p, 0.0)
        meta["cpu_seconds"].setdefault(p, 0.0)
    for m in models:
        m.to(device)
        if device == "cuda":
            m.to(memory_format=torch.channels_last)
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" \
        else contextlib.nullcontext
    rng = np.random.default_rng(1234 + sum(meta["steps"].values()))
    budget = {p: minutes * 60 * share[p] for p in phases}
    log_path = out / "loss.csv"
    new_log = not log_path.is_file()
    start = phases.index(meta["phase"]) if meta["phase"] in phases else len(phases)
    with open(log_path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new_log:
            w.writerow(["phase", "step", "seconds", "loss", "bpp_or_adv", "mse"])
        for phase in phases[start:]:
            meta["phase"] = phase
            if phase == "res" and meta["steps"]["res"] == 0 and init is None:
                res.load_state_dict(base.state_dict())
            if phase == "gan" and meta["steps"]["gan"] == 0 and init is None:
                gan.load_state_dict(base.state_dict())
            if phase == "gan":                         # frozen encoder = the base's (same bits)
                sync_encoder(gan, base)
            if phase == "upgan" and meta["steps"]["upgan"] == 0 and not meta.get("upg_init"):
                upg.load_state_dict(up.state_dict())   # adversarial fine-tune of the L2 one
            trainable = {"base": base, "up": up, "res": res, "gan": gan.g_s, "upgan": upg}[phase]
            lr0 = cfg.get("upg_lr", UPG_DEFAULTS["upg_lr"]) if phase == "upgan" else cfg["lr"]
            opt = torch.optim.Adam(trainable.parameters(), lr=lr0)
            opt_d = torch.optim.Adam((updisc if phase == "upgan" else disc).parameters(), lr=lr0,
                                     betas=(0.5, 0.999))
            cap = steps * share[phase] if steps else math.inf
            t_start = time.time() - meta["seconds"][phase]
            c_start = time.process_time() - meta["cpu_seconds"][phase]
            last_ck = time.time()
            for m in models:
                m.train()
            if phase != "base":
                base.eval()
            if phase in ("res", "upgan"):
                up.eval()
            while meta["steps"][phase] < cap and (steps or time.time() - t_start < budget[phase]):
                frac = (time.time() - t_start) / max(budget[phase], 1e-9) if not steps else \
                    meta["steps"][phase] / cap
                lr = lr0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
                for o in (opt, opt_d):
                    for gr in o.param_groups:
                        gr["lr"] = lr
                k = meta["steps"][phase]
                if phase == "base":
                    xb = _batch(big, max(1, cfg["batch"] // 4), rng, device) \
                        if cfg.get("base_crop", 32) == 64 else _batch(crops, cfg["batch"], rng, device)
                    r = step_base(base, xb, opt, amp,
                                  cfg.get("t_lo", 0.0), cfg.get("hi_frac", 0.0))
                elif phase == "up":
                    r = step_up(base, up, _batch(big, max(1, cfg["batch"] // 4), rng, device),
                                opt, amp)
                elif phase == "res" and k % 2:
                    r = step_res(base, res, _batch(big, max(1, cfg["batch"] // 4), rng, device),
                                 opt, amp, up=up)
                elif phase == "res":
                    r = step_res(base, res, _batch(crops, cfg["batch"], rng, device), opt, amp)
                elif phase == "gan":
                    r = step_gan(gan, disc, _batch(crops, cfg["batch"], rng, device), opt,
                                 opt_d, cfg["adv"], amp)
                else:
                    r = step_upgan(base, upg, updisc,
                                   _batch(big, max(1, cfg["batch"] // 4), rng, device), opt,
                                   opt_d, cfg, amp)
                meta["steps"][phase] += 1
                meta["seconds"][phase] = time.time() - t_start
                meta["cpu_seconds"][phase] = time.process_time() - c_start
                k = meta["steps"][phase]
                if k % 20 == 0 or k < 3:
                    w.writerow([phase, k, round(meta["seconds"][phase], 1), *(f"{v:.5g}" for v in r)])
                    fh.flush()
                if time.time() - last_ck > 120:
                    _save(ckpt, models, meta)
                    last_ck = time.time()
            log(f"phase {phase}: {meta['steps'][phase]} steps in {meta['seconds'][phase]:.0f} s")
            _save(ckpt, models, meta)
    meta["phase"] = "done"
    _save(ckpt, models, meta)
    return export(models, cfg, meta, data, out, model_id, device)


def export_arrays(base, res, gan, up=None, upg=None) -> dict[str, np.ndarray]:
    """Shipped arrays: base.*, res.*, gan.g_s.*, up.*, upg.* (fp32) and the Gaussian code
    tables."""
    from .export import gaussian_tables

    arrays: dict[str, np.ndarray] = {}
    for name, m in (("base", base), ("res", res), ("up", up), ("upg", upg)):
        if m is None:
            continue
        for k, v in m.state_dict().items():
            arrays[f"{name}.{k}"] = v.detach().float().cpu().contiguous().numpy()
    for k, v in gan.g_s.state_dict().items():
        arrays[f"gan.g_s.{k}"] = v.detach().float().cpu().contiguous().numpy()
    yf, yo, _ = gaussian_tables()
    arrays["y_freqs"], arrays["y_offsets"] = yf.astype(np.int32), yo.astype(np.int64)
    return arrays


def _init_steps(init: str | None) -> dict[str, int] | None:
    """The steps of the model a run started from (its card beside the weights), if known."""
    card = Path(init).with_suffix(".json") if init else None
    if card is None or not card.is_file():
        return None
    c = json.loads(card.read_text())
    steps = dict(c.get("steps") or {})
    for k, v in (c.get("init_steps") or {}).items():     # cumulative over the lineage
        steps[k] = steps.get(k, 0) + v
    return steps


def export(models, cfg, meta, data, out: Path, model_id: str, device: str,
           results: Any = None) -> Path:
    from .. import weights

    base, res, gan, _, up, upg, _ = (m.float().cpu().eval() for m in models)
    has_upg = bool(meta["steps"].get("upgan") or meta.get("upg_init"))
    c = {**UPG_DEFAULTS, **cfg}
    card = {
        "id": model_id, "codec": "ae", "default": True,
        "architecture": (
            f"block CNN-AE of seed 001 on 32x32 blocks, stride 4: g_a conv5 s2 + GDN, conv5 s2 + "
            f"GDN, conv3 (N={cfg['N']}, C={cfg['C']}) plus a lapped linear path (conv 8x8 s4); "
            f"g_s conv3 + IGDN, conv3 + pixel shuffle + IGDN, conv3 to 12 + pixel shuffle, plus "
            f"transposed conv 8x8 s4; gain units over lambdas {cfg['lambdas']}; latents coded "
            f"with the hyperprior codec's integer Gaussian tables (64 scales), per-channel "
            f"scale chosen per image and a per-block scale offset. Arrays base.* (CNN-AE), res.* "
            f"(residual AE of --passes, input 0.5 + {RES_SCALE:g} * residual), gan.g_s.* "
            f"(GAN-AE decoder of --decoder gan: L2 + least-squares GAN loss, adv weight "
            f"{cfg['adv']}, patch discriminator, encoder frozen), up.* (generator decoding the "
            f"2x box-downsampled image for --down 2: bilinear-initialised transposed conv + "
            f"{cfg.get('up_depth', 5)} conv3 layers of {cfg.get('up_N', 48)} channels, pixel "
            f"shuffle; L2 loss only)" + (
                f"; upg.* (the same generator fine-tuned from up.* adversarially for "
                f"upsampler=gan: 1000 * MSE + {c['upg_adv']} * least-squares GAN + "
                f"{c['upg_fm']} * discriminator feature matching (L1), patch discriminator on "
                f"64x64 crops)" if has_upg else "")),
        "adversarial_loss": "least-squares GAN (LSGAN), not WGAN-GP" + (
            ", for both the GAN-AE decoder (gan.g_s) and the adversarial upsampler (upg)"
            if has_upg else ""),
        "config": cfg,
        "data": f"{data}: training split (held-back photos excluded), "
                f"{cfg['crops_per_image']} random 32x32 crops per image (res, gan"
                f"{'' if cfg.get('base_crop', 32) == 64 else ', base'}) and "
                f"{cfg.get('up_crops', 0)} random 64x64 crops per image (up, upgan, every second "
                f"res step{', base' if cfg.get('base_crop', 32) == 64 else ''}), half from "
                f"0.5-1x downscaled copies; never Kodak",
        "init": meta.get("init"),
        "init_steps": _init_steps(meta.get("init")),
        "steps": meta["steps"], "seconds": {k: round(v) for k, v in meta["seconds"].items()},
        "cpu_seconds": {k: round(v) for k, v in meta.get("cpu_seconds", {}).items()},
        "device": device, "batch": cfg["batch"],
        "results": results,
    }
    return weights.save(export_arrays(base, res, gan, up, upg if has_upg else None), card, out,
                        model_id)


def main(argv: list[str] | None = None, prog: str = "python -m gancomp.train.ae") -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("--config", default="cpu", help="tiny, cpu, gpu or a JSON file")
    p.add_argument("--data", required=True, help="folder of training photos (never Kodak)")
    p.add_argument("--out", required=True, help="run folder: checkpoint, loss.csv, exported model")
    p.add_argument("--minutes", type=float, default=10.0, help="wall minutes for all phases")
    p.add_argument("--steps", type=int, default=0, help="total steps instead of minutes")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--model-id", default="ae-v1")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--init", type=Path, help="start from this exported .safetensors model")
    p.add_argument("--phases", help="phases and time shares, e.g. up=0.6,res=0.4 "
                                    "(default: all, 45/20/15/10/10)")
    p.add_argument("--export-only", action="store_true",
                   help="export the run's current checkpoint without training")
    a = p.parse_args(argv)
    cfg = dict(CONFIGS[a.config]) if a.config in CONFIGS else json.loads(Path(a.config).read_text())
    cfg["name"] = a.config if a.config in CONFIGS else Path(a.config).stem
    if a.export_only:
        models = build(cfg)
        meta = _load(Path(a.out) / "checkpoint.safetensors", models)
        print(f"exported: {export(models, cfg, meta, a.data, Path(a.out), a.model_id, a.device)}")
        return
    share = None
    if a.phases:
        share = {k: float(v) for k, v in (kv.split("=") for kv in a.phases.split(","))}
        if not set(share) <= set(PHASES):
            p.error(f"--phases: names must be among {', '.join(PHASES)}")
    path = train(cfg, a.data, Path(a.out), a.minutes, a.device, a.steps, a.model_id, a.fresh,
                 init=a.init, share=share)
    print(f"exported: {path}")


if __name__ == "__main__":
    main()
