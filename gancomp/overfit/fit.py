"""Encode-time fitting of one image's latents and networks (Cool-chic / C3 recipe).

Loss = MSE(RGB in 0..1) + lambda * bits / pixels. Phases:

1. warm-up: ``candidates`` random network inits, each fitted ``warm`` iterations; the best
   (lowest loss over its last iterations) continues;
2. main: soft rounding with annealed temperature (0.5 -> 0.2) around additive uniform noise,
   y_hat = s_T(s_T(y) + u) (Agustsson & Theis 2020, as in C3), Adam with cosine-decayed
   learning rates (latents and networks in separate groups), gradient-norm clipping;
3. final: straight-through quantization (forward round(y), backward through s_T at T=0.2) at a
   low learning rate, so the fit ends at the values that will be coded.

Written for one CPU core, where memory traffic is the bottleneck: the 1x1 layers of the
synthesis are matrix products over (channels, pixels) run in cache-sized chunks with
recomputation in backward (:mod:`gancomp.overfit.fused`); the ARM and the rate run in one
pass over row blocks of each grid that also yields their gradients, and the bilinear
upsampling is two small matrix products per grid (:mod:`gancomp.overfit.fastops`); Adam is
fused with torch._foreach.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .fastops import arm_bits, conv_mse, soft_quant, upsample_stack
from .fused import mlp
from .model import Arch, param_shapes


@dataclass
class Schedule:
    iters: int = 1000
    candidates: int = 1
    warm: int = 0
    lr_lat: float = 1e-1
    lr_net: float = 1e-2
    lr_final: float = 1e-4
    final_frac: float = 0.1
    t_start: float = 0.5
    t_end: float = 0.2
    clip: float = 1.0


@dataclass
class FitResult:
    latents: list[np.ndarray]
    params: dict[str, np.ndarray]
    loss: float
    iters_done: int
    seconds: float
    s_per_iter: float
    history: list[tuple[int, float, float, float]] = field(default_factory=list)


def softround(y, t: float):
    import torch

    f = torch.floor(y)
    r = y - f - 0.5
    return f + 0.5 + torch.tanh(r / t) / (2.0 * math.tanh(0.5 / t))


class _Model:
    """Float model state on one device."""

    def __init__(self, arch: Arch, img: np.ndarray, device: str, gen,
                 init: dict[str, np.ndarray] | None = None) -> None:
        import torch

        self.arch = arch
        self.h, self.w = img.shape[:2]
        self.n = self.h * self.w
        self.dev = device
        tgt = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)
        self.target = tgt.reshape(3, -1).contiguous().to(device)
        self.shapes = arch.grid_shapes(self.h, self.w)
        self.n_lat = sum(a * b for a, b in self.shapes)
        self.latents = [torch.zeros(s, device=device, requires_grad=True) for s in self.shapes]
        if init is not None and "analysis" in init:  # start from the image's projection
            from .prefit import analysis

            with torch.no_grad():
                for y, a in zip(self.latents, analysis(img, np.asarray(init["analysis"], np.float64), arch)):
                    y.copy_(torch.from_numpy(a).float())
        self.mean_rgb = tgt.reshape(3, -1).mean(1).to(device)
        self.init = init
        self.init_nets(gen)

    def init_nets(self, gen) -> None:
        import torch

        self.nets: dict[str, torch.Tensor] = {}
        if self.init is not None:  # pre-fitted networks (gancomp.overfit.prefit)
            self.nets = {k: torch.as_tensor(np.asarray(self.init[k]), dtype=torch.float32)
                         .clone().to(self.dev).requires_grad_(True) for k, _ in param_shapes(self.arch)}
            return
        for name, shp in param_shapes(self.arch):
            if name.endswith(".b"):
                t = torch.zeros(shp)
            elif name.startswith("conv"):
                t = torch.zeros(shp)  # residual layers start as the identity
            else:
                fan_in = shp[1] if name.startswith("syn") else shp[0]
                t = (torch.rand(shp, generator=gen) * 2 - 1) * math.sqrt(6.0 / fan_in)
            self.nets[name] = t
        last = len(self.arch.syn_dims()) - 2
        self.nets[f"syn{last}.b"] = self.mean_rgb.detach().cpu().clone()
        self.nets[f"syn{last}.w"] *= 0.1
        n_arm = len(self.arch.arm_dims()) - 2
        self.nets[f"arm{n_arm}.w"] *= 0.1
        self.nets = {k: v.to(self.dev).requires_grad_(True) for k, v in self.nets.items()}

    def reset_latents(self) -> None:
        import torch

        with torch.no_grad():
            for y in self.latents:
                y.zero_()

    def loss(self, qs: list, lam: float):
        """(loss, mse, bits) for quantized latents ``qs``."""
        nets = self.nets
        n_arm = len(self.arch.arm_dims()) - 1
        bits = arm_bits(qs, [nets[f"arm{i}.w"].t() for i in range(n_arm)],
                        [nets[f"arm{i}.b"] for i in range(n_arm)])
        x = upsample_stack(qs, self.h, self.w)
        n_syn = len(self.arch.syn_dims()) - 1
        x = mlp(x, [nets[f"syn{i}.w"] for i in range(n_syn)], [nets[f"syn{i}.b"] for i in range(n_syn)],
                cols=True)
        mse = conv_mse(x, self.target, self.h, self.w, nets["conv0.w"], nets["conv0.b"],
                       nets["conv1.w"], nets["conv1.b"])
        return mse + lam * bits / self.n, mse, bits

    def export(self) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        lat = [y.detach().cpu().double().numpy() for y in self.latents]
        return lat, {k: v.detach().cpu().double().numpy() for k, v in self.nets.items()}


class _Adam:
    """Adam over two groups (latents, networks) with fused foreach updates."""

    def __init__(self, groups: list[list]) -> None:
        import torch

        self.groups = groups
        self.m = [[torch.zeros_like(p) for p in g] for g in groups]
        self.v = [[torch.zeros_like(p) for p in g] for g in groups]
        self.t = 0

    def step(self, lrs: list[float], clip: float) -> None:
        import torch

        self.t += 1
        c1 = 1 - 0.9 ** self.t
        c2 = math.sqrt(1 - 0.999 ** self.t)
        with torch.no_grad():
            for g, m, v, lr in zip(self.groups, self.m, self.v, lrs):
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in g]
                if clip > 0:
                    norm = torch.linalg.vector_norm(torch.stack(
                        [torch.linalg.vector_norm(x) for x in grads]))
                    torch._foreach_mul_(grads, torch.clamp(clip / (norm + 1e-12), max=1.0))
                torch._foreach_lerp_(m, grads, 0.1)
                torch._foreach_mul_(v, 0.999)
                torch._foreach_addcmul_(v, grads, grads, value=0.001)
                den = torch._foreach_sqrt(v)
                torch._foreach_div_(den, c2)
                torch._foreach_add_(den, 1e-8)
                torch._foreach_addcdiv_(g, m, den, value=-lr / c1)
                for p in g:
                    p.grad = None


_HEAP_SET = False


def _reuse_freed_memory() -> None:
    """Let glibc keep freed blocks of up to 32 MiB in the heap instead of unmapping them.

    Each iteration allocates and frees dozens of image-sized tensors (1-10 MB); by default
    glibc serves each with fresh mmap pages, so every iteration pays page faults and zeroing
    for ~100 MB (measured: 0.31 -> 0.28 CPU s per iteration at 768x512). Process-wide and
    harmless (peak memory is what the fit needs anyway); a no-op off glibc."""
    global _HEAP_SET
    if _HEAP_SET:
        return
    _HEAP_SET = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def fit(img: np.ndarray, lam: float, arch: Arch, sched: Schedule, seed: int = 0,
        device: str = "cpu", progress: Callable[[int, int, float], None] | None = None,
        init: dict[str, np.ndarray] | None = None) -> FitResult:
    """Fit latents and networks to ``img`` (H, W, 3) uint8 for the trade-off ``lam``;
    ``init``: pre-fitted network weights to start from (no warm-up over random starts then)."""
    import torch

    if device == "cpu":
        _reuse_freed_memory()
    gen = torch.Generator().manual_seed(seed)
    dgen = torch.Generator(device=device).manual_seed(seed + 1)
    model = _Model(arch, img, device, gen, init)
    if init is not None:
        sched = Schedule(**{**sched.__dict__, "candidates": 1, "warm": 0})
    total = sched.candidates * sched.warm + sched.iters
    done = 0
    t0 = time.perf_counter()
    history: list[tuple[int, float, float, float]] = []

    def quant(mode: str, t: float) -> list:
        out = []
        for y in model.latents:
            if mode == "noise":
                u = torch.rand(y.shape, generator=dgen, device=device) - 0.5
                out.append(soft_quant(y, u, t))
            else:
                out.append(soft_quant(y, None, t))
        return out

    def run(opt: _Adam, n: int, lr_fn, t_fn, mode: str) -> float:
        nonlocal done
        recent = []
        for it in range(n):
            loss, mse, bits = model.loss(quant(mode, t_fn(it)), lam)
            loss.backward()
            opt.step(lr_fn(it), sched.clip)
            done += 1
            recent.append(loss.detach())  # no device sync per iteration
            if it % 50 == 0 or it == n - 1:
                history.append((done, float(loss.detach()), float(mse.detach()),
                                float(bits.detach()) / model.n))
            if progress and (done % 10 == 0 or it == n - 1):
                progress(done, total, float(recent[-1]))
        tail = recent[-max(1, n // 10):]
        return float(torch.stack(tail).mean()) if tail else float("inf")

    def new_opt() -> _Adam:
        return _Adam([model.latents, list(model.nets.values())])

    # 1. warm-up over candidate initializations
    if sched.candidates > 1 and sched.warm > 0:
        best = (float("inf"), None)
        for c in range(sched.candidates):
            model.init_nets(gen)
            model.reset_latents()
            score = run(new_opt(), sched.warm, lambda it: [sched.lr_lat, sched.lr_net],
                        lambda it: sched.t_start, "noise")
            if score < best[0]:
                best = (score, ({k: v.detach().clone() for k, v in model.nets.items()},
                                [y.detach().clone() for y in model.latents]))
        nets, lats = best[1]
        with torch.no_grad():
            for k, v in nets.items():
                model.nets[k] = v.clone().requires_grad_(True)
            for y, l0 in zip(model.latents, lats):
                y.copy_(l0)
    # 2. main phase: noise + soft rounding, cosine learning rate, annealed temperature
    n_final = int(round(sched.iters * sched.final_frac))
    n_main = sched.iters - n_final

    def cos(it: int, n: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * it / max(1, n)))

    run(new_opt(), n_main,
        lambda it: [sched.lr_lat * cos(it, n_main), sched.lr_net * cos(it, n_main)],
        lambda it: sched.t_start + (sched.t_end - sched.t_start) * it / max(1, n_main), "noise")
    # 3. straight-through phase at a low learning rate
    final = run(new_opt(), n_final,
                lambda it: [sched.lr_final * cos(it, n_final), sched.lr_final * cos(it, n_final)],
                lambda it: sched.t_end, "ste")
    secs = time.perf_counter() - t0
    lat, nets = model.export()
    return FitResult(lat, nets, final, done, secs, secs / max(1, done), history)
