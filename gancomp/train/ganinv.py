"""Train the face generator of ``gan-inversion``: an adversarially regularized autoencoder.

What is trained, per step on a batch x of 64x64 faces (augmented by horizontal flips):

- E(x) -> z; G(z + u), u ~ U(-d/2, d/2) with d = 0.25 (the 5-bit quantizer step, so G learns
  to be robust to latent quantization); reconstruction loss 10·MSE + (1 − SSIM);
- moment matching of the batch of E(x) to N(0, I) (so random starts and the Gaussian
  entropy model fit the latents);
- a hinge GAN on G(z_r), z_r ~ N(0, I), against a spectrally normalized D (weight ``adv``),
  which keeps G's range close to faces (the prior that GANZ and compressive sensing use).

v2 configs (``CONFIGS[...]["prior"] == "factorized"``, model ``ganinv-faces64-v2``) replace
the fixed Gaussian latent by a learned one: E(x) = y, G sees round(y) (straight-through),
a factorized Gaussian prior P (per-dimension mean and scale) gives the rate of y + U(-1/2, 1/2)
in bits, and the loss adds lam * bits with lam steered so that the mean rate meets
``--target-bits`` (a rate-constrained autoencoder; the GAN term samples y from P).
``--init`` starts a v2 run from the exported v1 weights (latent scaled to unit bins, the new
latent dimensions start near zero).

Run ``python -m gancomp.train.ganinv DATA_DIR --run runs/ganinv --minutes 60`` (resumable:
rerun the same command), then ``--export models`` writes weights + card via gancomp.weights.
Face ids (numeric file names of the 8000-face set) above 7250 are never read for training:
7251..7500 are the tuning slice (encoder schedule), 7501..8000 the test faces. Folders with
other names hold out the last 500 sorted files (and tune on the 250 before them).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..nn.faces import CONFIGS, SIZE, Discriminator, LatentPrior, build, ssim_torch

HOLDOUT = 500
TUNE = 250
QSTEP = 0.25
N_IDS = 8000        # the face set's numeric ids 1..8000: test = last HOLDOUT, tune = TUNE before


def face_files(data: Path) -> list[Path]:
    """All face images of a folder, sorted by name."""
    return sorted(p for p in Path(data).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def split(data: Path, holdout: int = HOLDOUT) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): the last ``holdout`` sorted ids are held out."""
    files = face_files(data)
    if len(files) <= holdout:
        raise ValueError(f"{data}: {len(files)} images, need more than the {holdout} held out")
    return files[:-holdout], files[-holdout:]


def split3(data: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(training, tuning, test) files. Numeric names (the face set, also as a JPEG copy):
    ids <= 7250 train, 7251..7500 tune, 7501..8000 test, whatever subset the folder holds.
    Other folders: positional, the last HOLDOUT test and the TUNE before them."""
    files = face_files(data)
    if files and all(f.stem.isdigit() for f in files):
        cut_t, cut_h = N_IDS - HOLDOUT - TUNE, N_IDS - HOLDOUT
        tr = [f for f in files if int(f.stem) <= cut_t]
        tu = [f for f in files if cut_t < int(f.stem) <= cut_h]
        return tr, tu, [f for f in files if int(f.stem) > cut_h]
    if len(files) <= HOLDOUT + TUNE:
        raise ValueError(f"{data}: {len(files)} images, need more than {HOLDOUT + TUNE}")
    return files[:-HOLDOUT - TUNE], files[-HOLDOUT - TUNE:-HOLDOUT], files[-HOLDOUT:]


def load_u8(files: list[Path], cache: Path | None = None) -> np.ndarray:
    """(N, 64, 64, 3) uint8 array of the files, cached as .npy when ``cache`` is given."""
    from PIL import Image

    if cache is not None and cache.exists():
        arr = np.load(cache)
        if len(arr) == len(files):
            return arr
    arr = np.stack([np.asarray(Image.open(f).convert("RGB").resize((SIZE, SIZE), Image.BICUBIC))
                    for f in files])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, arr)
    return arr


def _opt_state(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{prefix}.{i}.{k}"] = torch.as_tensor(v).float().reshape(-1) if k == "step" \
                else v.contiguous()
    return out


def _load_opt_state(opt: torch.optim.Optimizer, prefix: str, tensors: dict) -> None:
    sd = opt.state_dict()
    state: dict = {}
    for name, v in tensors.items():
        if not name.startswith(prefix + "."):
            continue
        _, i, k = name.split(".", 2)
        state.setdefault(int(i), {})[k] = v.reshape(()) if k == "step" else v
    sd["state"] = state
    opt.load_state_dict(sd)


class Trainer:
    """Holds the networks, optimizers and step count; checkpoints to safetensors."""

    def __init__(self, config_name: str, seed: int = 0, adv: float = 0.05, device: str = "cpu",
                 target_bits: float = 800.0, amp: bool = False) -> None:
        torch.manual_seed(seed)
        self.config_name = config_name
        self.config = dict(CONFIGS[config_name])
        self.device = torch.device(device)
        self.G, self.E = build(self.config)
        self.D = Discriminator(self.config["width"])
        self.v2 = self.config.get("prior") == "factorized"
        self.P = LatentPrior(self.config["zdim"]) if self.v2 else None
        for m in self.modules():
            m.to(self.device)
        if self.device.type == "cuda":
            for m in (self.G, self.E, self.D):
                m.to(memory_format=torch.channels_last)
        self.amp = amp and self.device.type == "cuda"
        self.adv = adv
        self.target_bits = target_bits
        self.log_lam = math.log(1e-4)
        ge = list(self.G.parameters()) + list(self.E.parameters())
        self.opt_ge = torch.optim.Adam(ge, lr=3e-4, betas=(0.5, 0.99))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.99))
        self.opt_p = torch.optim.Adam(self.P.parameters(), lr=3e-3) if self.v2 else None
        self.step = 0
        self.rng = np.random.default_rng(seed)

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.G, self.E, self.D, self.P) if m is not None]

    def init_from_v1(self, path: Path) -> None:
        """Start a v2 run from exported v1 weights: y = 4 z (the 5-bit step 1/4 becomes a unit
        bin), G's h0 takes y / 4; the extra latent dimensions start small."""
        from safetensors.torch import load_file

        t = load_file(str(path))
        g = {k[2:]: v for k, v in t.items() if k.startswith("G.")}
        e = {k[2:]: v for k, v in t.items() if k.startswith("E.")}
        k = g["fc.weight"].shape[1]
        with torch.no_grad():
            gw, ew = self.G.fc.weight, self.E.fc.weight
            gw.mul_(0.02)
            ew.mul_(0.02)
            g["fc.weight"] = torch.cat([g["fc.weight"] / 4, gw[:, k:].cpu()], 1)
            e["fc.weight"] = torch.cat([e["fc.weight"] * 4, ew[k:].cpu()], 0)
            e["fc.bias"] = torch.cat([e["fc.bias"] * 4, torch.zeros(ew.shape[0] - k)])
            self.G.load_state_dict(g)
            self.E.load_state_dict(e)
            self.P.log_scale[:k] = math.log(4.0)
            self.P.log_scale[k:] = math.log(0.3)

    def _gen(self, y: torch.Tensor) -> torch.Tensor:
        return self.G(y).float()

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        G, E, D = self.G, self.E, self.D
        n = x.shape[0]
        ac = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)
        with ac:
            z = E(x).float()
        if self.v2:
            yq = z + (torch.round(z) - z).detach()
            with ac:
                xr = G(yq).float()
            bits = self.P.bits(z + torch.rand_like(z) - 0.5)
            rate = bits.mean()
            moment = torch.zeros((), device=z.device)
            zr = self.P.sample(n).detach()
        else:
            with ac:
                xr = G(z + (torch.rand_like(z) - 0.5) * QSTEP).float()
            mu, var = z.mean(0), z.var(0)
            moment = (mu ** 2).mean() + ((var - 1) ** 2).mean()
            rate = torch.zeros((), device=z.device)
            zr = torch.randn(n, z.shape[1], device=z.device)
        mse = F.mse_loss(xr, x)
        ssim = ssim_torch(xr, x).mean()
        use_d = self.adv > 0
        if use_d:  # adv = 0 trains a plain rate-constrained autoencoder (about 2x cheaper)
            with ac:
                xf = G(zr)
                g_adv = -D(xf).float().mean()
        else:
            g_adv = torch.zeros((), device=z.device)
        lam = math.exp(self.log_lam)
        loss = 10 * mse + (1 - ssim) + 0.1 * moment + self.adv * g_adv + lam * rate
        self.opt_ge.zero_grad(set_to_none=True)
        if self.v2:
            self.opt_p.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_ge.step()
        if self.v2:  # the prior learns the rate of the (detached) latents, unweighted
            self.opt_p.zero_grad(set_to_none=True)
            self.P.bits(z.detach() + torch.rand_like(z) - 0.5).mean().backward()
            self.opt_p.step()
            r = float(rate.detach())
            self.log_lam = float(np.clip(self.log_lam + 0.05 * (r / self.target_bits - 1),
                                         math.log(1e-7), math.log(1e-1)))
        d_loss = torch.zeros(())
        if use_d:
            with ac:
                d_loss = F.relu(1 - D(x)).float().mean() + F.relu(1 + D(xf.detach())).float().mean()
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        self.step += 1
        psnr = -10 * math.log10(max(float(mse.detach()), 1e-12))
        return {"step": self.step, "loss": float(loss.detach()), "mse": float(mse.detach()), "psnr": psnr,
                "ssim": float(ssim.detach()), "moment": float(moment.detach()), "g_adv": float(g_adv.detach()),
                "d_loss": float(d_loss.detach()), "bits": float(rate.detach()), "lam": lam}

    def batch(self, data, size: int) -> torch.Tensor:
        """A random batch (N, 3, 64, 64) in [0, 1] with horizontal flips, from a uint8 NHWC
        numpy array or a uint8 NCHW tensor already on the device."""
        idx = self.rng.integers(0, len(data), size)
        flip = self.rng.random(size) < 0.5
        if isinstance(data, torch.Tensor):
            x = data[torch.from_numpy(idx).to(data.device)]
            f = torch.from_numpy(flip).to(data.device)
            x = torch.where(f[:, None, None, None], x.flip(3), x)
            x = x.float() / 255.0
        else:
            x = data[idx]
            x[flip] = x[flip][:, :, ::-1]
            x = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0
            x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        t = {}
        for name, mod in (("G", self.G), ("E", self.E), ("D", self.D), ("P", self.P)):
            if mod is not None:
                t.update({f"{name}.{k}": v for k, v in mod.state_dict().items()})
        t.update(_opt_state(self.opt_ge, "optge"))
        t.update(_opt_state(self.opt_d, "optd"))
        if self.v2:
            t.update(_opt_state(self.opt_p, "optp"))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in t.items()}, str(tmp),
                  metadata={"step": str(self.step), "config": self.config_name,
                            "log_lam": repr(self.log_lam)})
        tmp.replace(path)

    def load(self, path: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        t = load_file(str(path), device=str(self.device))
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        self.step = int(meta["step"])
        self.log_lam = float(meta.get("log_lam", self.log_lam))
        for name, mod in (("G", self.G), ("E", self.E), ("D", self.D), ("P", self.P)):
            if mod is not None:
                mod.load_state_dict({k[len(name) + 1:]: v for k, v in t.items()
                                     if k.startswith(name + ".")})
        _load_opt_state(self.opt_ge, "optge", t)
        _load_opt_state(self.opt_d, "optd", t)
        if self.v2:
            _load_opt_state(self.opt_p, "optp", t)
        self.rng = np.random.default_rng(self.step)


def gaussian_tables(max_bits: int = 8) -> dict[str, np.ndarray]:
    """Integer frequency tables of a unit Gaussian quantized with step 8/2^b, b = 2..max_bits,
    symbols -2^(b-1)..2^(b-1) plus an escape bin. Computed once here and stored with the
    weights, so encoder and decoder use the same integers on every machine."""
    out = {}
    for b in range(2, max_bits + 1):
        k = 2 ** (b - 1)
        step = 8.0 / 2 ** b
        edges = (np.arange(-k, k + 2) - 0.5) * step
        cdf = np.array([0.5 * (1 + math.erf(e / math.sqrt(2))) for e in edges])
        p = np.diff(cdf)
        freqs = np.maximum(np.round(p * (1 << 20)), 1).astype(np.int32)
        out[f"freq_b{b}"] = np.append(freqs, 1).astype(np.int32)  # escape bin
    return out


LEVELS = tuple(2.0 ** ((2 - i) / 2) for i in range(5))   # v2 quantizer steps, 2 .. 0.5


def factorized_tables(loc: np.ndarray, scale: np.ndarray, step: float) -> np.ndarray:
    """Integer frequency tables (zdim, 2K+2) of the v2 prior quantized with ``step``: row i
    gives symbols -K..K of dimension i (value k*step) plus an escape bin. Computed once at
    export and stored, so both sides code with the same integers on every machine."""
    loc, scale = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
    k = int(min(127, math.ceil(float(np.max(np.abs(loc) + 7 * scale)) / step)))
    edges = (np.arange(-k, k + 2) - 0.5) * step
    t = (edges[None, :] - loc[:, None]) / (scale[:, None] * math.sqrt(2))
    cdf = 0.5 * (1 + torch.special.erf(torch.from_numpy(t)).numpy())
    p = np.diff(cdf, axis=1)
    freqs = np.maximum(np.round(p * (1 << 20)), 1).astype(np.int32)
    return np.concatenate([freqs, np.ones((len(loc), 1), np.int32)], 1)


@torch.no_grad()
def export(trainer: Trainer, train: np.ndarray, folder: Path, name: str, model_id: str,
           data_desc: str, extra: dict | None = None, default: bool | None = None,
           encode_lam: float | None = None, step2: float = 1.0) -> Path:
    """Write the shipped weights: G, E (float32), latent statistics of E over the training
    faces, the GANZ gain of h0, and the integer entropy tables; card via gancomp.weights.
    v2 adds the prior (P.loc, P.log_scale), its tables per quantizer step and ``levels``."""
    from .. import weights

    G, E = trainer.G.eval().float().cpu(), trainer.E.eval().float().cpu()
    G, E = G.to(memory_format=torch.contiguous_format), E.to(memory_format=torch.contiguous_format)
    zs = []
    for i in range(0, min(len(train), 4000), 250):
        x = torch.from_numpy(np.asarray(train[i:i + 250])).permute(0, 3, 1, 2).float() / 255.0
        zs.append(E(x))
    z = torch.cat(zs)
    h = G.fc(z) - G.fc.bias
    wdt = np.float16 if trainer.v2 else np.float32  # v2: fp16 storage (loaded as float32)
    arrays = {f"G.{k}": v.contiguous().numpy().astype(wdt) for k, v in G.state_dict().items()}
    arrays.update({f"E.{k}": v.contiguous().numpy().astype(wdt)
                   for k, v in E.state_dict().items()})
    arrays["z_mu"] = z.mean(0).numpy().astype(np.float32)
    arrays["z_sigma"] = z.std(0).clamp_min(1e-3).numpy().astype(np.float32)
    arrays["ganz_gain"] = h.std(0).clamp_min(1e-4).numpy().astype(np.float32)
    arrays.update(gaussian_tables())
    config = dict(trainer.config, name=trainer.config_name)
    if trainer.v2:
        P = trainer.P.cpu()
        loc, scale = P.loc.numpy().astype(np.float32), P.scale().numpy().astype(np.float32)
        arrays["P.loc"], arrays["P.scale"] = loc, scale
        levels = tuple(step2 * v for v in LEVELS)  # level 2 (the default) has step ``step2``
        arrays["levels"] = np.array(levels, np.float32)
        for i, st in enumerate(levels):
            arrays[f"freq_l{i}"] = factorized_tables(loc, scale, st)
        lam = math.exp(trainer.log_lam) if encode_lam is None else encode_lam
        arrays["lam"] = np.array([lam], np.float32)  # the encoder's rate weight per bit
        config.update(target_bits=trainer.target_bits, lam_train=math.exp(trainer.log_lam),
                      lam_encode=lam)
    if default is None:
        default = trainer.config_name == "small"
    card = {"id": model_id, "codec": "gan-inversion", "default": default,
            "config": config, "data": data_desc,
            "steps": trainer.step, "training": extra or {}, "results": {}}
    return weights.save(arrays, card, folder, name)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gancomp.train.ganinv", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="folder of 64x64 face images (PNG or JPEG)")
    ap.add_argument("--run", type=Path, default=Path("runs/ganinv"), help="checkpoint folder")
    ap.add_argument("--config", default="small", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=10 ** 9, help="stop after this many steps")
    ap.add_argument("--minutes", type=float, default=1e9, help="stop after this wall time")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--adv", type=float, default=0.05, help="weight of the GAN loss")
    ap.add_argument("--target-bits", type=float, default=800.0,
                    help="v2: mean latent rate (bits per face) the rate weight is steered to")
    ap.add_argument("--lr", type=float, default=3e-4, help="G/E learning rate")
    ap.add_argument("--init", type=Path, default=None,
                    help="v2: start from these exported v1 weights (ignored when resuming)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training files")
    ap.add_argument("--export", type=Path, default=None, help="write weights+card to this folder")
    ap.add_argument("--name", default="ganinv-faces64", help="export file name / model id")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda: bf16 autocast, "
                    "channels_last, data kept on the device)")
    ap.add_argument("--encode-lam", type=float, default=None,
                    help="v2 export: the encoder's rate weight per bit (default: training's)")
    ap.add_argument("--step2", type=float, default=1.0,
                    help="v2 export: quantizer step of the default level 2 (levels 0..4 are "
                         "step2 * 2, sqrt 2, 1, 1/sqrt 2, 1/2)")
    ap.add_argument("--decay", action="store_true",
                    help="cosine learning-rate decay to 10 %% over --minutes (this run)")
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    train_files, _, _ = split3(args.data)
    if args.limit:
        train_files = train_files[: args.limit]
    cache = args.run / f"faces_u8_{len(train_files)}.npy"
    train = load_u8(train_files, cache)
    tr = Trainer(args.config, adv=args.adv, device=args.device, target_bits=args.target_bits,
                 amp=args.device == "cuda")
    for o in (tr.opt_ge,):
        for g in o.param_groups:
            g["lr"] = args.lr
    ckpt = args.run / "ckpt.safetensors"
    if ckpt.exists():
        tr.load(ckpt)
        print(f"resumed at step {tr.step}", flush=True)
    elif args.init is not None:
        tr.init_from_v1(args.init)
        print(f"initialized from {args.init}", flush=True)
    data = train
    if tr.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        data = torch.from_numpy(train).permute(0, 3, 1, 2).contiguous().to(tr.device)
    log_path = args.run / "log.csv"
    new_log = not log_path.exists()
    t0, last = time.time(), time.time()
    fields = ["step", "time", "loss", "mse", "psnr", "ssim", "moment", "g_adv", "d_loss",
              "bits", "lam"]
    with open(log_path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new_log:
            w.writeheader()
        acc: list[dict] = []
        while tr.step < args.steps and time.time() - t0 < args.minutes * 60:
            if args.decay:
                frac = min(1.0, (time.time() - t0) / (args.minutes * 60))
                for g in tr.opt_ge.param_groups:
                    g["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            acc.append(tr.train_step(tr.batch(data, args.batch)))
            if tr.step % args.log_every == 0 or tr.step >= args.steps:
                row = {k: float(np.mean([a[k] for a in acc])) for k in fields
                       if k not in ("step", "time")}
                row.update(step=tr.step, time=round(time.time() - t0, 1))
                w.writerow(row)
                f.flush()
                print(json.dumps({k: round(v, 5) if isinstance(v, float) else v
                                  for k, v in row.items()}), flush=True)
                acc = []
            if tr.step % args.ckpt_every == 0 or time.time() - last > 600:
                tr.save(ckpt)
                last = time.time()
    tr.save(ckpt)
    if args.export is not None:
        what = (f"{args.data.name}: {len(train_files)} training files (face ids <= 7250 when "
                f"numbered; 7251..7500 tuning, 7501..8000 test, never read)")
        obj = ("10*MSE + (1-SSIM) on G(round_ste(E(x))) + lam*bits(E(x)+U(-1/2,1/2)) under a "
               "factorized Gaussian prior, lam steered to target_bits + adv*hinge(D, G(y~P))"
               if tr.v2 else
               "10*MSE + (1-SSIM) on G(E(x)+U(-1/8,1/8)) + 0.1*moment(E(x)) "
               "+ adv*hinge(D, G(N(0,I)))")
        p = export(tr, train, args.export, args.name, args.name, what,
                   {"batch": args.batch, "adv": args.adv, "threads": args.threads,
                    "device": args.device, "lr": args.lr, "objective": obj,
                    "init": str(args.init) if args.init else None,
                    "wall_seconds_last_run": round(time.time() - t0, 1)},
                   encode_lam=args.encode_lam, step2=args.step2)
        print(f"exported {p}", flush=True)


if __name__ == "__main__":
    main()
