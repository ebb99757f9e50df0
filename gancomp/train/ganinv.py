"""Train the face generator of ``gan-inversion``: an adversarially regularized autoencoder.

What is trained, per step on a batch x of 64x64 faces (augmented by horizontal flips):

- E(x) -> z; G(z + u), u ~ U(-d/2, d/2) with d = 0.25 (the 5-bit quantizer step, so G learns
  to be robust to latent quantization); reconstruction loss 10·MSE + (1 − SSIM);
- moment matching of the batch of E(x) to N(0, I) (so random starts and the Gaussian
  entropy model fit the latents);
- a hinge GAN on G(z_r), z_r ~ N(0, I), against a spectrally normalized D (weight ``adv``),
  which keeps G's range close to faces (the prior that GANZ and compressive sensing use).

Run ``python -m gancomp.train.ganinv DATA_DIR --run runs/ganinv --minutes 60`` (resumable:
rerun the same command), then ``--export models`` writes weights + card via gancomp.weights.
The last 500 files (sorted by name) are held out and never read for training.
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

from ..nn.faces import CONFIGS, SIZE, Discriminator, build, ssim_torch

HOLDOUT = 500
QSTEP = 0.25


def face_files(data: Path) -> list[Path]:
    """All face images of a folder, sorted by name."""
    return sorted(p for p in Path(data).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def split(data: Path, holdout: int = HOLDOUT) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): the last ``holdout`` sorted ids are held out."""
    files = face_files(data)
    if len(files) <= holdout:
        raise ValueError(f"{data}: {len(files)} images, need more than the {holdout} held out")
    return files[:-holdout], files[-holdout:]


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

    def __init__(self, config_name: str, seed: int = 0, adv: float = 0.05) -> None:
        torch.manual_seed(seed)
        self.config_name = config_name
        self.config = dict(CONFIGS[config_name])
        self.G, self.E = build(self.config)
        self.D = Discriminator(self.config["width"])
        self.adv = adv
        ge = list(self.G.parameters()) + list(self.E.parameters())
        self.opt_ge = torch.optim.Adam(ge, lr=3e-4, betas=(0.5, 0.99))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.99))
        self.step = 0
        self.rng = np.random.default_rng(seed)

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        G, E, D = self.G, self.E, self.D
        n = x.shape[0]
        z = E(x)
        xr = G(z + (torch.rand_like(z) - 0.5) * QSTEP)
        mse = F.mse_loss(xr, x)
        ssim = ssim_torch(xr, x).mean()
        mu, var = z.mean(0), z.var(0)
        moment = (mu ** 2).mean() + ((var - 1) ** 2).mean()
        zr = torch.randn(n, z.shape[1])
        xf = G(zr)
        g_adv = -D(xf).mean()
        loss = 10 * mse + (1 - ssim) + 0.1 * moment + self.adv * g_adv
        self.opt_ge.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_ge.step()
        d_loss = F.relu(1 - D(x)).mean() + F.relu(1 + D(xf.detach())).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        self.step += 1
        psnr = -10 * math.log10(max(float(mse.detach()), 1e-12))
        return {"step": self.step, "loss": float(loss.detach()), "mse": float(mse.detach()), "psnr": psnr,
                "ssim": float(ssim.detach()), "moment": float(moment.detach()), "g_adv": float(g_adv.detach()),
                "d_loss": float(d_loss.detach())}

    def batch(self, data: np.ndarray, size: int) -> torch.Tensor:
        idx = self.rng.integers(0, len(data), size)
        x = data[idx]
        flip = self.rng.random(size) < 0.5
        x[flip] = x[flip][:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        t = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        t.update({f"E.{k}": v for k, v in self.E.state_dict().items()})
        t.update({f"D.{k}": v for k, v in self.D.state_dict().items()})
        t.update(_opt_state(self.opt_ge, "optge"))
        t.update(_opt_state(self.opt_d, "optd"))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in t.items()}, str(tmp),
                  metadata={"step": str(self.step), "config": self.config_name})
        tmp.replace(path)

    def load(self, path: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        t = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            self.step = int(f.metadata()["step"])
        for name, mod in (("G", self.G), ("E", self.E), ("D", self.D)):
            mod.load_state_dict({k[len(name) + 1:]: v for k, v in t.items()
                                 if k.startswith(name + ".")})
        _load_opt_state(self.opt_ge, "optge", t)
        _load_opt_state(self.opt_d, "optd", t)
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


@torch.no_grad()
def export(trainer: Trainer, train: np.ndarray, folder: Path, name: str, model_id: str,
           data_desc: str, extra: dict | None = None) -> Path:
    """Write the shipped weights: G, E (float32), latent statistics of E over the training
    faces, the GANZ gain of h0, and the integer entropy tables; card via gancomp.weights."""
    from .. import weights

    G, E = trainer.G.eval(), trainer.E.eval()
    zs = []
    for i in range(0, min(len(train), 4000), 250):
        x = torch.from_numpy(train[i:i + 250]).permute(0, 3, 1, 2).float() / 255.0
        zs.append(E(x))
    z = torch.cat(zs)
    h = G.fc(z) - G.fc.bias
    arrays = {f"G.{k}": v.numpy().astype(np.float32) for k, v in G.state_dict().items()}
    arrays.update({f"E.{k}": v.numpy().astype(np.float32) for k, v in E.state_dict().items()})
    arrays["z_mu"] = z.mean(0).numpy().astype(np.float32)
    arrays["z_sigma"] = z.std(0).clamp_min(1e-3).numpy().astype(np.float32)
    arrays["ganz_gain"] = h.std(0).clamp_min(1e-4).numpy().astype(np.float32)
    arrays.update(gaussian_tables())
    card = {"id": model_id, "codec": "gan-inversion", "default": trainer.config_name == "small",
            "config": dict(trainer.config, name=trainer.config_name), "data": data_desc,
            "steps": trainer.step, "training": extra or {}, "results": {}}
    return weights.save(arrays, card, folder, name)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gancomp.train.ganinv", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="folder of 64x64 face images")
    ap.add_argument("--run", type=Path, default=Path("runs/ganinv"), help="checkpoint folder")
    ap.add_argument("--config", default="small", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=10 ** 9, help="stop after this many steps")
    ap.add_argument("--minutes", type=float, default=1e9, help="stop after this wall time")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--adv", type=float, default=0.05, help="weight of the GAN loss")
    ap.add_argument("--holdout", type=int, default=HOLDOUT)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training files")
    ap.add_argument("--export", type=Path, default=None, help="write weights+card to this folder")
    ap.add_argument("--name", default="ganinv-faces64", help="export file name / model id")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt-every", type=int, default=500)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    train_files, _ = split(args.data, args.holdout)
    if args.limit:
        train_files = train_files[: args.limit]
    cache = args.run / f"faces_u8_{len(train_files)}.npy"
    train = load_u8(train_files, cache)
    tr = Trainer(args.config, adv=args.adv)
    ckpt = args.run / "ckpt.safetensors"
    if ckpt.exists():
        tr.load(ckpt)
        print(f"resumed at step {tr.step}", flush=True)
    log_path = args.run / "log.csv"
    new_log = not log_path.exists()
    t0, last = time.time(), time.time()
    fields = ["step", "time", "loss", "mse", "psnr", "ssim", "moment", "g_adv", "d_loss"]
    with open(log_path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new_log:
            w.writeheader()
        acc: list[dict] = []
        while tr.step < args.steps and time.time() - t0 < args.minutes * 60:
            acc.append(tr.train_step(tr.batch(train, args.batch)))
            if tr.step % 50 == 0 or tr.step >= args.steps:
                row = {k: float(np.mean([a[k] for a in acc])) for k in fields if k not in ("step", "time")}
                row.update(step=tr.step, time=round(time.time() - t0, 1))
                w.writerow(row)
                f.flush()
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                  for k, v in row.items()}), flush=True)
                acc = []
            if tr.step % args.ckpt_every == 0 or time.time() - last > 600:
                tr.save(ckpt)
                last = time.time()
    tr.save(ckpt)
    if args.export is not None:
        p = export(tr, train, args.export, args.name, args.name,
                   f"{args.data.name}: first {len(train_files)} sorted files "
                   f"(last {args.holdout} held out)",
                   {"batch": args.batch, "adv": args.adv, "threads": args.threads,
                    "objective": "10*MSE + (1-SSIM) on G(E(x)+U(-1/8,1/8)) + 0.1*moment(E(x)) "
                                 "+ adv*hinge(D, G(N(0,I)))"})
        print(f"exported {p}", flush=True)


if __name__ == "__main__":
    main()
