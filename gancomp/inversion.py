"""GAN inversion: find the latent whose generated image matches a face (seeds 000 and 003).

The latent is optimized in normalized units u (z = mu + sigma * u, where mu, sigma are the
encoder's latent statistics over the training faces) and quantized with step 8 / 2^bits, so
the integer symbols follow a unit Gaussian, which is the entropy model in the file. Encoding
starts from the encoder's guess E(x) plus perturbed and random restarts, runs Adam with a
cosine schedule, switches to straight-through rounding for the last quarter of the steps (so
the coded latent is what was optimized) and keeps the restart with the lowest loss after
quantization.

GANZ (seed 003): with ``ratio`` R the generator's first linear layer h0 is replaced by a
random linear layer of input size d = 64*64*3 / R, drawn from a seeded PCG64 stream and scaled
per output by the trained h0's output spread; the generator's convolutions are unchanged.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from . import progress
from .errors import InputError
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

    @property
    def zdim(self) -> int:
        return int(self.mu.numel())


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
    return FaceModel(model_id, sha, G, E, torch.from_numpy(np.array(arrays["z_mu"])),
                     torch.from_numpy(np.array(arrays["z_sigma"])),
                     np.asarray(arrays["ganz_gain"], dtype=np.float32), tables, card)


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


@contextmanager
def one_thread():
    """Run torch on one thread: the tensors here are tiny, and several OpenMP threads on a
    busy machine spin against each other (measured: 78 s instead of 4 s per face)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


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


def synth(model: FaceModel, u: torch.Tensor, ganz: tuple[int, int] | None = None) -> torch.Tensor:
    """Images (N, 3, 64, 64) in [0, 1] from normalized latents u (N, d)."""
    if ganz is None:
        return model.G(model.mu + model.sigma * u)
    w = ganz_layer(model, *ganz)
    return model.G.synth(F.linear(u, w, model.G.fc.bias))


def decode_latents(model: FaceModel, symbols: np.ndarray, bits: int,
                   ganz: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 images (N, 64, 64, 3) from integer latent symbols."""
    u = torch.from_numpy(symbols.astype(np.float32) * np.float32(qstep(bits)))
    with torch.no_grad(), one_thread():
        x = synth(model, u, ganz)
    return to_u8(x)


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
