"""What the generative and ablative trainers share: training crops (held-out photos and
faces never read), resumable safetensors checkpoints with Adam state, the device / bf16 AMP /
channels_last setup, a time-or-steps schedule and a CSV loss log.

Training needs only torch, numpy, pillow and safetensors (it runs on bare GPU machines).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import extract_crops, list_images, split_held_out

FACES_HOLDOUT = 500


def training_files(folder: str | Path, faces: bool = False) -> list[Path]:
    """Training images of ``folder``: photos minus the held-back 5 %, or for the full faces
    set (8000 files) everything but the last 500 sorted ids."""
    files = list_images(folder)
    if faces:
        return files[:-FACES_HOLDOUT] if len(files) > 4500 + FACES_HOLDOUT - 1 else files
    return split_held_out(files)[0]


def crops_for(folder: str | Path, crop: int, per_image: int, seed: int, cache_dir: Path,
              faces: bool = False) -> np.ndarray:
    """(n, crop, crop, 3) uint8 training crops, cached once as .npy in ``cache_dir``."""
    files = training_files(folder, faces)
    key = hashlib.sha256("\n".join(map(str, files)).encode() +
                         f"{crop},{per_image},{seed},{faces}".encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"crops_{crop}_{per_image}_{key}.npy"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        if faces:
            from PIL import Image

            arr = np.stack([np.asarray(Image.open(f).convert("RGB").resize((crop, crop)))
                            for f in files])
        else:
            arr = extract_crops(files, crop, per_image, seed)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)
    return np.load(path)


def batch(crops: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(B, 3, H, W) float32 in [0, 1], random flips."""
    idx = rng.integers(0, crops.shape[0], size)
    b = crops[idx].astype(np.float32) / 255.0
    if rng.random() < 0.5:
        b = b[:, :, ::-1]
    return np.ascontiguousarray(b.transpose(0, 3, 1, 2))


def setup_device(name: str, threads: int = 1):
    """torch device, with one CPU thread unless told otherwise."""
    import torch

    torch.set_num_threads(int(threads))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda requested but no CUDA device is available")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.device(name)


def autocast(device):
    """bf16 autocast on CUDA, nothing on CPU."""
    import contextlib

    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def save_checkpoint(path: Path, modules: dict, opts: dict, step: int, cfg: dict,
                    extra: dict | None = None) -> None:
    """Modules, Adam moments and step in one safetensors file (atomic replace)."""
    import torch
    from safetensors.torch import save_file

    tensors = {}
    for name, m in modules.items():
        for k, v in m.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().float().contiguous().cpu() \
                if v.is_floating_point() else v.detach().contiguous().cpu()
    for name, opt in opts.items():
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                tensors[f"opt_{name}.{i}.{k}"] = torch.as_tensor(v).float().reshape(-1).cpu() \
                    if k == "step" else v.detach().contiguous().cpu()
    meta = {"step": str(step), "config": json.dumps(cfg), "extra": json.dumps(extra or {})}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path, modules: dict, opts: dict | None = None) -> tuple[int, dict]:
    """Restore what :func:`save_checkpoint` wrote; returns (step, extra)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for name, m in modules.items():
        sd = m.state_dict()
        m.load_state_dict({k: tensors[f"{name}.{k}"].to(sd[k].dtype) for k in sd})
    for name, opt in (opts or {}).items():
        sd = opt.state_dict()
        state: dict = {}
        for key, v in tensors.items():
            if key.startswith(f"opt_{name}."):
                _, i, k = key.split(".", 2)
                state.setdefault(int(i), {})[k] = v.reshape(()) if k == "step" else v
        if state:
            sd["state"] = state
            opt.load_state_dict(sd)
    return int(meta["step"]), json.loads(meta.get("extra", "{}"))


def read_config(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["config"])


class Schedule:
    """Progress in [0, 1] by steps or wall minutes (whichever is further along)."""

    def __init__(self, steps: int, minutes: float, done_seconds: float = 0.0) -> None:
        self.steps, self.minutes = steps, minutes
        self.t0 = time.time() - done_seconds

    def elapsed(self) -> float:
        return time.time() - self.t0

    def frac(self, step: int) -> float:
        f = step / max(1, self.steps) if self.steps else 0.0
        if self.minutes:
            f = max(f, self.elapsed() / (60 * self.minutes))
        return min(1.0, f)

    def done(self, step: int) -> bool:
        return self.frac(step) >= 1.0


def lr_at(base: float, final: float, frac: float) -> float:
    """Constant for the first half, then log-linear decay to ``final``."""
    return base * (final / base) ** max(0.0, (frac - 0.5) * 2)


class LossLog:
    """Append-only CSV log with running means over ``every`` steps."""

    def __init__(self, path: Path, fields: list[str], fresh: bool) -> None:
        new = fresh or not path.is_file()
        self.f = open(path, "w" if new else "a", newline="")
        self.w = csv.writer(self.f)
        self.fields = fields
        if new:
            self.w.writerow(["step", "seconds", *fields])
        self.acc: dict[str, float] = {k: 0.0 for k in fields}
        self.n = 0

    def add(self, **vals: float) -> None:
        for k, v in vals.items():
            self.acc[k] += float(v)
        self.n += 1

    def flush(self, step: int, seconds: float) -> dict[str, float]:
        means = {k: v / max(1, self.n) for k, v in self.acc.items()}
        self.w.writerow([step, round(seconds, 1), *(f"{means[k]:.5g}" for k in self.fields)])
        self.f.flush()
        self.acc = {k: 0.0 for k in self.fields}
        self.n = 0
        return means

    def close(self) -> None:
        self.f.close()


def psnr_of(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-10))


def merge_config(base: dict[str, Any], **over: Any) -> dict[str, Any]:
    cfg = dict(base)
    cfg.update({k: v for k, v in over.items() if v is not None})
    return cfg


def lsgan_generator_losses(disc, fake_img, real_img):
    """Least-squares adversarial loss of the generator and discriminator feature matching
    (L1 over every scale's intermediate features), for a multi-scale discriminator whose
    outputs are per-scale lists ending with the score map."""
    import torch
    import torch.nn.functional as F

    fake = disc(fake_img)
    with torch.no_grad():
        real = disc(real_img)
    adv = sum(((f[-1].float() - 1) ** 2).mean() for f in fake) / len(fake)
    fm = sum(F.l1_loss(a.float(), b.float()) for fs, rs in zip(fake, real)
             for a, b in zip(fs[:-1], rs[:-1])) / len(fake)
    return adv, fm


def lsgan_discriminator_loss(real, fake):
    """Least-squares discriminator loss over the scales' score maps (real -> 1, fake -> 0)."""
    return sum(((r[-1].float() - 1) ** 2).mean() + (f[-1].float() ** 2).mean()
               for r, f in zip(real, fake)) / len(real)
