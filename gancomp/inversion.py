"""GAN inversion: find the latent whose generated image matches a face (seeds 000 and 003).

The latent is optimized in normalized units u (z = mu + sigma * u, where mu, sigma are the
encoder's latent statistics over the training faces) and quantized with step 8 / 2^bits, so
the integer symbols follow a unit Gaussian, which is the entropy model in the file. Encoding
starts from the encoder's guess E(x) plus perturbed and random restarts, runs Adam with a
cosine schedule, switches to straight-through rounding for the last quarter of the steps (so
the coded latent is what was optimized) and keeps the restart with the lowest loss after
quantization.

v2 models (``ganinv-faces64-v2``) have a learned factorized prior instead: the latent y is
quantized with the step ``levels[l]`` and coded with per-dimension integer tables; encoding
starts at E(x), optimizes distortion + lam * bits(y) (the rate weight the model was trained
with) with rounding in the loop (straight-through), keeps each face's best quantized latent
and stops when no face improved for a few steps (:func:`invert_v2`).

GANZ (seed 003): with ``ratio`` R the generator's first linear layer h0 is replaced by a
random linear layer of input size d = 64*64*3 / R, drawn from a seeded PCG64 stream and scaled
per output by the trained h0's output spread; the generator's convolutions are unchanged.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from . import progress
from .errors import InputError
from .nn import one_thread
from .nn.adam import Adam
from .nn.faces import SIZE, Encoder, Generator, ssim_torch

N_PIXELS = SIZE * SIZE * 3
LOSSES = ("mse", "combined")


@dataclass
class FaceModel:
    """A loaded generator/encoder pair with its latent statistics and entropy tables."""

    id: str
    sha256: str
    G: Generator
    E: Encoder
    mu: torch.Tensor
    sigma: torch.Tensor
    gain: np.ndarray
    tables: dict[int, np.ndarray]
    card: dict = field(default_factory=dict)
    # v2: learned prior (loc, scale), quantizer steps and their integer tables, rate weight
    loc: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    levels: tuple[float, ...] = ()
    level_tables: dict[int, np.ndarray] = field(default_factory=dict)
    lam: float = 0.0
    G64: Generator | None = None  # float64 copy of G, made on first use (see generator())

    @property
    def zdim(self) -> int:
        return int(self.mu.numel())

    @property
    def v2(self) -> bool:
        return self.loc is not None


def _from_arrays(arrays: dict, card: dict, model_id: str, sha: str) -> FaceModel:
    cfg = card["config"]
    G, E = Generator(cfg["zdim"], cfg["width"]), Encoder(cfg["zdim"], cfg["width"])
    G.load_state_dict({k[2:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                       if k.startswith("G.")})
    E.load_state_dict({k[2:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                       if k.startswith("E.")})
    for m in (G, E):
        m.eval().requires_grad_(False)
    tables = {int(k[6:]): np.asarray(v, dtype=np.int64) for k, v in arrays.items()
              if k.startswith("freq_b")}
    m = FaceModel(model_id, sha, G, E, torch.from_numpy(np.array(arrays["z_mu"])),
                  torch.from_numpy(np.array(arrays["z_sigma"])),
                  np.asarray(arrays["ganz_gain"], dtype=np.float32), tables, card)
    if "P.loc" in arrays:
        m.loc = torch.from_numpy(np.array(arrays["P.loc"], dtype=np.float32))
        m.scale = torch.from_numpy(np.array(arrays["P.scale"], dtype=np.float32))
        m.levels = tuple(float(v) for v in np.asarray(arrays["levels"]))
        m.level_tables = {int(k[6:]): np.asarray(v, dtype=np.int64) for k, v in arrays.items()
                          if k.startswith("freq_l")}
        m.lam = float(np.asarray(arrays["lam"]).ravel()[0])
    return m


@lru_cache(maxsize=4)
def _load_cached(model_id: str, expect: str) -> FaceModel:
    from . import weights

    arrays, m = weights.load(model_id, expect)
    return _from_arrays(arrays, m.card, m.id, m.sha256)


def load_model(model_id: str | None = None, expect_sha256: str = "") -> FaceModel:
    """The face model ``model_id`` (default: the default gan-inversion model), verified."""
    from . import weights
    from .errors import ModelError

    if not model_id:
        m = weights.default_for("gan-inversion")
        if m is None:
            raise ModelError("no gan-inversion model is installed (see `gancomp models`)")
        model_id = m.id
    return _load_cached(model_id, expect_sha256)


def qstep(bits: int) -> float:
    """Quantizer step (normalized latent units) of ``bits``: 8 / 2^bits."""
    return 8.0 / 2 ** bits


def ganz_dim(ratio: float) -> int:
    """GANZ latent size d = 64*64*3 / R (at least 1)."""
    if not (1.0 <= ratio <= N_PIXELS):
        raise InputError(f"--ratio must be in 1..{N_PIXELS} for gan-inversion, got {ratio:g}")
    return max(1, int(round(N_PIXELS / ratio)))


@lru_cache(maxsize=4)
def _ganz_weight(seed: int, d: int, gain_bytes: bytes) -> torch.Tensor:
    gain = np.frombuffer(gain_bytes, dtype=np.float32)
    w = np.random.Generator(np.random.PCG64(seed)).standard_normal((gain.size, d))
    w = w.astype(np.float32) * (gain[:, None] / np.float32(math.sqrt(d)))
    return torch.from_numpy(np.ascontiguousarray(w))


def ganz_layer(model: FaceModel, seed: int, d: int) -> torch.Tensor:
    """The fixed random h0 replacement (4096 x d) of GANZ, identical on every machine."""
    return _ganz_weight(int(seed), int(d), model.gain.tobytes())


def synth(model: FaceModel, u: torch.Tensor, ganz: tuple[int, int] | None = None,
          G: Generator | None = None) -> torch.Tensor:
    """Images (N, 3, 64, 64) in [0, 1] from normalized latents u (N, d); ``G`` replaces the
    model's generator (its float64 copy at decode)."""
    G = model.G if G is None else G
    if ganz is None:
        return G(model.mu.to(u.dtype) + model.sigma.to(u.dtype) * u)
    w = ganz_layer(model, *ganz).to(u.dtype)
    return G.synth(F.linear(u, w, G.fc.bias))


def generator(model: FaceModel, precision: int = 32) -> Generator:
    """The model's generator in float32, or a cached float64 copy: float64 sums round to the
    same 8-bit pixels whatever the thread count or CPU kernels (float32 missed by one level
    on one pixel of 500 test faces), so files of codec version 3 decode with it."""
    if precision == 32:
        return model.G
    if model.G64 is None:
        model.G64 = copy.deepcopy(model.G).double()
    return model.G64


def decode_latents(model: FaceModel, symbols: np.ndarray, bits: int,
                   ganz: tuple[int, int] | None = None, precision: int = 32) -> np.ndarray:
    """uint8 images (N, 64, 64, 3) from integer latent symbols; ``precision`` 32 or 64 is the
    synthesis float width the file asks for."""
    u = torch.from_numpy(symbols.astype(np.float32) * np.float32(qstep(bits)))
    with torch.no_grad(), one_thread():
        x = synth(model, u.to(_DTYPES[precision]), ganz, generator(model, precision))
    return to_u8(x)


def decode_latents_v2(model: FaceModel, symbols: np.ndarray, level: int,
                      precision: int = 32) -> np.ndarray:
    """uint8 images (N, 64, 64, 3) from the integer latents of a v2 model."""
    y = torch.from_numpy(symbols.astype(np.float32) * np.float32(model.levels[level]))
    with torch.no_grad(), one_thread():
        x = generator(model, precision)(y.to(_DTYPES[precision]))
    return to_u8(x)


_DTYPES = {32: torch.float32, 64: torch.float64}


def rate_bits(model: FaceModel, u: torch.Tensor, step: float) -> torch.Tensor:
    """(N,) bits of latents u (in quantizer steps) under a v2 model's prior: the Gaussian
    mass of the unit bin around each u (a smooth stand-in for the coded size)."""
    loc, sc = model.loc / step, model.scale / step
    c = (u - loc).abs()
    p = torch.special.ndtr((0.5 - c) / sc) - torch.special.ndtr((-0.5 - c) / sc)
    return -torch.log2(p.clamp_min(1e-9)).sum(1)


@dataclass
class V2Result:
    symbols: np.ndarray          # (N, zdim) int64
    loss: np.ndarray             # (N,) best loss (distortion + lam * bits) of the coded latent
    steps: int                   # optimizer steps run


def invert_v2(model: FaceModel, images: np.ndarray, **kw) -> V2Result:
    """Integer latents of a v2 model for uint8 (N, 64, 64, 3) ``images`` (:func:`_invert_v2`)."""
    with one_thread():
        return _invert_v2(model, images, **kw)


def _invert_v2(model: FaceModel, images: np.ndarray, *, level: int = 2, steps: int = 40,
               lr: float = 0.3, lr_end: float = 0.05, patience: int = 8, loss: str = "combined",
               rate_weight: float = 1.0) -> V2Result:
    """Latent optimization for v2 models, quantized in the loop.

    u (latent in quantizer steps) starts at E(x)/step; each step scores G(round(u)*step)
    (straight-through gradient) plus ``rate_weight`` * lam * bits(u), keeps each face's best
    rounded latent, and Adam's rate falls linearly from ``lr`` to ``lr_end``. Stops after
    ``steps`` or when no face improved for ``patience`` steps.
    """
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if not 0 <= level < len(model.levels):
        raise InputError(f"level must be in 0..{len(model.levels) - 1}, got {level}")
    step = model.levels[level]
    lam = model.lam * rate_weight
    x = from_u8(images)
    with torch.no_grad():
        u = (model.E(x) / step).clone()
    best_sym = torch.round(u)
    with torch.no_grad():
        best = per_image_loss(model.G(best_sym * step), x, loss) + lam * rate_bits(model, best_sym, step)
    u.requires_grad_(True)
    opt = Adam([u], lr=lr)
    stall = torch.zeros(x.shape[0], dtype=torch.int64)
    active = torch.ones(x.shape[0], dtype=torch.bool)
    done = 0
    for i in range(steps):
        opt.lr = lr + (lr_end - lr) * i / max(steps - 1, 1)
        q = torch.round(u)
        v = u + (q - u).detach()
        per = per_image_loss(model.G(v * step), x, loss)
        tot = per + lam * rate_bits(model, u, step)
        opt.zero_grad()
        tot.sum().backward()
        opt.step()
        done = i + 1
        with torch.no_grad():  # score of the rounded latent that was just synthesized
            cur = per.detach() + lam * rate_bits(model, q, step)
            better = (cur < best - 1e-5) & active
            best = torch.where(better, cur, best)
            best_sym[better] = q[better]
            # each face stops on its own (as if encoded alone): frozen once it stalls
            stall = torch.where(better, torch.zeros_like(stall), stall + 1)
            active &= stall < patience
        if not bool(active.any()):
            break
    return V2Result(best_sym.to(torch.int64).numpy(), best.numpy(), done)


def to_u8(x: torch.Tensor) -> np.ndarray:
    """[0, 1] NCHW tensor -> NHWC uint8 (round half to even, as torch.round)."""
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def from_u8(x: np.ndarray) -> torch.Tensor:
    """NHWC uint8 -> [0, 1] NCHW float tensor."""
    return torch.from_numpy(np.array(x, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0


def per_image_loss(xr: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """(N,) loss: ``mse`` (seed 003) or ``combined`` 10·MSE + (1 − SSIM) − 0.01·PSNR (seed 000),
    on [0, 1] images."""
    mse = ((xr - x) ** 2).flatten(1).mean(1)
    if loss == "mse":
        return mse
    psnr = -10 * torch.log10(mse.clamp_min(1e-10))
    return 10 * mse + (1 - ssim_torch(xr, x)) - 0.01 * psnr


@dataclass
class InvertResult:
    symbols: np.ndarray          # (N, d) int64
    loss: np.ndarray             # (N,) loss of the quantized latent


def _starts(model: FaceModel, x: torch.Tensor, restarts: int, d: int,
            ganz: tuple[int, int] | None, gen: torch.Generator) -> torch.Tensor:
    """(restarts, N, d) starting points: encoder guess, perturbed guesses, random draws."""
    n = x.shape[0]
    with torch.no_grad():
        z0 = model.E(x)
        u0 = (z0 - model.mu) / model.sigma
        if ganz is not None:  # least-squares fit of the random h0 to the encoder's h0
            w = ganz_layer(model, *ganz)
            target = (model.G.fc(z0) - model.G.fc.bias).T
            u0 = torch.linalg.lstsq(w.double(), target.double()).solution.T.float()
    starts = [u0]
    for r in range(1, restarts):
        if r % 2 == 1:
            starts.append(u0 + 0.5 * torch.randn(n, d, generator=gen))
        else:
            starts.append(torch.randn(n, d, generator=gen))
    return torch.stack(starts)


def invert(model: FaceModel, images: np.ndarray, **kw) -> InvertResult:
    """Latent symbols for each of the uint8 (N, 64, 64, 3) ``images`` (see :func:`_invert`)."""
    with one_thread():
        return _invert(model, images, **kw)


def _invert(model: FaceModel, images: np.ndarray, *, loss: str = "combined", bits: int = 5,
           steps: int = 120, restarts: int = 2, lr: float = 0.08, prior: float = 2e-4,
           ratio: float | None = None, seed: int = 0) -> InvertResult:
    """Latent symbols for each of the uint8 (N, 64, 64, 3) ``images``.

    ``prior`` weighs mean(u²), the Gaussian rate term, against the distortion loss.
    """
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if bits not in model.tables:
        raise InputError(f"bits must be in {min(model.tables)}..{max(model.tables)}, got {bits}")
    if steps < 0 or restarts < 1:
        raise InputError("steps must be >= 0 and restarts >= 1")
    ganz = (seed, ganz_dim(ratio)) if ratio is not None else None
    d = ganz[1] if ganz else model.zdim
    x = from_u8(images)
    n = x.shape[0]
    gen = torch.Generator().manual_seed(1234)
    u = _starts(model, x, restarts, d, ganz, gen).reshape(restarts * n, d).clone()
    u.requires_grad_(True)
    xt = x.repeat(restarts, 1, 1, 1)
    step = qstep(bits)
    opt = Adam([u], lr=lr)
    st_from = int(steps * 0.75)

    def quant(v: torch.Tensor) -> torch.Tensor:
        return torch.round(v / step) * step

    for i in range(steps):
        opt.lr = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / max(steps, 1))))
        v = u + (quant(u) - u).detach() if i >= st_from else u
        per = per_image_loss(synth(model, v, ganz), xt, loss) + prior * (v ** 2).mean(1)
        opt.zero_grad()
        per.sum().backward()
        opt.step()
        progress.update(i + 1, steps, "steps")
    with torch.no_grad():
        q = quant(u)
        per = per_image_loss(synth(model, q, ganz), xt, loss) + prior * (q ** 2).mean(1)
        per = per.reshape(restarts, n)
        best = per.argmin(0)
        sym = torch.round(q / step).reshape(restarts, n, d)[best, torch.arange(n)]
    return InvertResult(sym.to(torch.int64).numpy(), per.min(0).values.numpy())
