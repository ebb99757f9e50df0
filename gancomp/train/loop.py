"""Rate-distortion training of the hyperprior model: fresh random crops every step (>= 256 px
in the shipped configs), lambda sampled over the quality range per sample, Adam, one torch
thread on CPU, bf16 autocast and channels_last on CUDA, safetensors checkpoints with resume,
CSV loss log. ``init`` starts from a shipped model (see :mod:`gancomp.train.warmstart`).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

DEFAULTS: dict[str, Any] = {
    "name": "hp", "N": 64, "M": 128, "Nh": 64,
    "lambdas": [0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.05],
    "data": "/work/shared/data/train", "crop": 256, "downscaled_copy": True, "seed": 0,
    "batch": 8, "lr": 2e-4, "lr_final": 5e-5, "steps": 100000, "minutes": 0,
    "checkpoint_minutes": 5, "log_every": 10, "threads": 1, "device": "cpu",
    "run_dir": "runs/hp", "init": None, "amp": True, "channels_last": True,
}


def load_config(name_or_path: str, **overrides: Any) -> dict[str, Any]:
    """A config by name (gancomp/train/configs/NAME.json) or path, over :data:`DEFAULTS`."""
    p = Path(name_or_path)
    if not p.is_file():
        p = CONFIG_DIR / f"{name_or_path}.json"
    if not p.is_file():
        names = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.json")))
        raise InputError(f"no config {name_or_path!r} (built in: {names})")
    cfg = dict(DEFAULTS)
    cfg.update(json.loads(p.read_text()))
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def build_model(cfg: dict[str, Any]):
    """The torch model a config describes."""
    from ..nn.hyperprior import HyperpriorModel

    return HyperpriorModel(cfg["N"], cfg["M"], cfg["Nh"], tuple(cfg["lambdas"]))


def rd_loss(model, out: dict, x, t) -> tuple[Any, Any, Any]:
    """Mean over the batch of lambda(t) * 255^2 * MSE + bpp; also returns bpp and MSE."""
    import torch

    from ..nn.hyperprior import LIKELIHOOD_MIN, lower_bound

    n_pix = x.shape[2] * x.shape[3]
    bits = (-torch.log2(lower_bound(out["y_lik"].float(), LIKELIHOOD_MIN))).sum((1, 2, 3)) + \
        (-torch.log2(lower_bound(out["z_lik"].float(), LIKELIHOOD_MIN))).sum((1, 2, 3))
    bpp = bits / n_pix
    mse = ((out["x_hat"].float() - x.float()) ** 2).mean((1, 2, 3))
    loss = (model.lam(t) * 255 ** 2 * mse + bpp).mean()
    return loss, bpp.mean(), mse.mean()


def _save_checkpoint(path: Path, model, opt, step: int, cfg: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, p in enumerate(model.parameters()):
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                tensors[f"opt.{i}.{key}"] = st[key].contiguous()
        if "step" in st:
            tensors[f"opt.{i}.step"] = torch_tensor(st["step"])
    meta = {"step": str(step), "config": json.dumps(cfg)}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def torch_tensor(v):
    import torch

    return v.detach().clone().reshape(1) if torch.is_tensor(v) else torch.tensor([float(v)])


def load_checkpoint(path: Path, model, opt=None) -> int:
    """Restore model (and optimizer) state; returns the step."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if opt is not None:
        for i, p in enumerate(model.parameters()):
            if f"opt.{i}.exp_avg" in tensors:
                opt.state[p] = {"exp_avg": tensors[f"opt.{i}.exp_avg"],
                                "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"],
                                "step": tensors[f"opt.{i}.step"].reshape(()).to(torch.float32)}
    return int(meta["step"])


def train(cfg: dict[str, Any], resume: bool = True, progress: bool = True) -> Path:
    """Train per ``cfg``; returns the checkpoint path. Stops after ``steps`` or ``minutes``."""
    import contextlib

    import torch

    from .data import CropSampler, load_images

    torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])
    device = torch.device(_device(cfg["device"]))
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True          # fixed crop size: pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run = Path(cfg["run_dir"])
    run.mkdir(parents=True, exist_ok=True)
    images = load_images(cfg["data"], cfg["crop"], cfg.get("downscaled_copy", True), cfg["seed"])
    model = build_model(cfg)
    ckpt = run / "checkpoint.safetensors"
    resuming = resume and ckpt.is_file()
    init_info: dict[str, float] = {}
    if cfg.get("init") and not resuming:
        from .warmstart import load_shipped

        init_info = load_shipped(model, cfg["init"])
    model = model.to(device)
    if cuda and cfg.get("channels_last", True):
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    step = load_checkpoint(ckpt, model, opt) if resuming else 0
    if step:
        for st in opt.state.values():
            for k in ("exp_avg", "exp_avg_sq"):
                st[k] = st[k].to(device)
    sampler = CropSampler(images, cfg["crop"], str(device), cfg["seed"] + step)
    rng = np.random.default_rng(cfg["seed"] + step)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if cuda and cfg.get("amp", True)
           else contextlib.nullcontext())
    log_path = run / "loss.csv"
    new_log = not log_path.is_file() or step == 0
    log = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "seconds", "lr", "loss", "bpp", "psnr"])
    if init_info:
        (run / "init.json").write_text(json.dumps({"init": cfg["init"], **init_info}) + "\n")
    t0 = time.time()
    last_ckpt = t0
    lr = cfg["lr"]
    deadline = t0 + 60 * cfg["minutes"] if cfg["minutes"] else math.inf
    total = int(cfg["steps"])
    acc = torch.zeros(3, device=device)
    skipped = 0
    n_acc = 0
    bar = _progress(progress)
    task = bar.add_task("train", total=total, completed=step) if bar else None
    model.train()
    try:
        if bar:
            bar.start()
        while step < total and time.time() < deadline:
            frac = step / max(1, total)  # lr schedule: constant, then log-linear decay
            if cfg["minutes"]:
                frac = max(frac, (time.time() - t0) / (60 * cfg["minutes"]))
            lr = cfg["lr"] * (cfg["lr_final"] / cfg["lr"]) ** max(0.0, (frac - 0.5) * 2)
            for g in opt.param_groups:
                g["lr"] = lr
            x = sampler.sample(cfg["batch"])
            if cuda and cfg.get("channels_last", True):
                x = x.contiguous(memory_format=torch.channels_last)
            t = torch.from_numpy(rng.uniform(0, model.levels - 1, cfg["batch"]).astype(np.float32)).to(device)
            with amp:
                out = model(x, t)
            loss, bpp, mse = rd_loss(model, out, x, t)
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):   # a bad bf16 step must not poison the weights
                skipped += 1
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            acc += torch.stack([loss.detach(), bpp.detach(), -10 * torch.log10(mse.detach().clamp_min(1e-10))])
            n_acc += 1
            if step % cfg["log_every"] == 0 or step == total:
                m = _log_row(writer, log, step, t0, lr, acc, n_acc)
                if bar:
                    bar.update(task, completed=step,
                               description=f"loss {m[0]:.3f} bpp {m[1]:.3f} psnr {m[2]:.2f}")
                acc.zero_()
                n_acc = 0
            if time.time() - last_ckpt > 60 * cfg["checkpoint_minutes"]:
                _save_checkpoint(ckpt, model, opt, step, cfg)
                last_ckpt = time.time()
    finally:
        if bar:
            bar.stop()
        if n_acc:  # the steps since the last row (a run stopped by its minutes)
            _log_row(writer, log, step, t0, lr, acc, n_acc)
        if skipped:
            print(f"skipped {skipped} steps with a non-finite loss", file=sys.stderr)
        log.close()
        _save_checkpoint(ckpt, model, opt, step, cfg)
    return ckpt


def _log_row(writer, log, step: int, t0: float, lr: float, acc, n_acc: int) -> list[float]:
    m = (acc / n_acc).tolist()
    writer.writerow([step, round(time.time() - t0, 1), f"{lr:.3g}", f"{m[0]:.4f}", f"{m[1]:.4f}",
                     f"{m[2]:.3f}"])
    log.flush()
    return m


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    return name


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn())


def main(argv: list[str] | None = None) -> int:
    """``python -m gancomp.train.loop --config gpu --device cuda --minutes M --data DIR
    --run-dir DIR --export ID --out DIR``: train, then export (needs only torch, numpy, pillow,
    safetensors: the GPU machine has no click, rich or constriction)."""
    import argparse
    import shutil

    from ..errors import GanCompError

    p = argparse.ArgumentParser(prog="python -m gancomp.train.loop", description=main.__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--data")
    p.add_argument("--run-dir")
    p.add_argument("--steps", type=int)
    p.add_argument("--minutes", type=float)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch", type=int)
    p.add_argument("--threads", type=int, help="torch threads (1 on a shared CPU box)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--export", dest="model_id", help="export under this model id")
    p.add_argument("--out", default="models", help="export folder (weights, card, loss.csv)")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config, data=a.data, run_dir=a.run_dir, steps=a.steps,
                          minutes=a.minutes, device=a.device, batch=a.batch,
                          threads=a.threads)
        t0 = time.time()
        ckpt = train(cfg, resume=not a.fresh, progress=False)
        print(f"trained in {time.time() - t0:.0f} s: {ckpt}", file=sys.stderr)
        if a.model_id:
            from .export import export

            t1 = time.time()
            path = export(ckpt, a.model_id, Path(a.out), default=False)
            shutil.copy(Path(cfg["run_dir"]) / "loss.csv", Path(a.out) / f"{a.model_id}.loss.csv")
            print(f"exported in {time.time() - t1:.0f} s: {path}", file=sys.stderr)
    except GanCompError as exc:
        print(f"gancomp: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
