"""Networks of the ``gan-inversion`` face codec: a DCGAN-style generator G(z), an encoder E
that predicts a starting latent (so inversion needs few steps), and a discriminator D.

G: z (dim ``zdim``) -> linear "h0" -> (8w, 4, 4) -> four stride-2 transposed convolutions
-> 64x64 RGB in [0, 1]. The linear layer h0 is kept separate (``G.fc``) because GANZ
(seed 003) swaps it for a fixed-seed random linear layer of another input size.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SIZE = 64

CONFIGS: dict[str, dict[str, Any]] = {
    # shipped model: trained on 7,500 CelebA 64x64 faces on one CPU thread
    "small": {"zdim": 128, "width": 32},
    # tests: trains in seconds
    "tiny": {"zdim": 16, "width": 4},
    # v2: wider latent coded with a learned factorized entropy model (rate term in training)
    "v2": {"zdim": 256, "width": 32, "prior": "factorized"},
    "tiny2": {"zdim": 24, "width": 4, "prior": "factorized"},
}


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class Generator(nn.Module):
    """z -> 64x64 RGB image in [0, 1] (N, 3, 64, 64)."""

    def __init__(self, zdim: int, width: int) -> None:
        super().__init__()
        w = width
        self.zdim = zdim
        self.c0 = 8 * w
        self.fc = nn.Linear(zdim, self.c0 * 16)
        self.body = nn.Sequential(
            _act(),
            nn.ConvTranspose2d(8 * w, 4 * w, 4, 2, 1), _act(),       # 8x8
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), _act(),       # 16x16
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), _act(),           # 32x32
            nn.Conv2d(w, w, 3, 1, 1), _act(),
            nn.ConvTranspose2d(w, 3, 4, 2, 1),                       # 64x64
        )

    def synth(self, h: torch.Tensor) -> torch.Tensor:
        """The convolutional module: h0 activations (N, 16*c0) -> image."""
        x = self.body(h.view(-1, self.c0, 4, 4))
        return torch.sigmoid(x)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synth(self.fc(z))


class Encoder(nn.Module):
    """64x64 RGB in [0, 1] -> latent z (a starting point for inversion)."""

    def __init__(self, zdim: int, width: int) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), _act(),                        # 32
            nn.Conv2d(w, 2 * w, 4, 2, 1), _act(),                    # 16
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), _act(),                # 8
            nn.Conv2d(4 * w, 8 * w, 4, 2, 1), _act(),                # 4
        )
        self.fc = nn.Linear(8 * w * 16, zdim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x * 2 - 1).flatten(1))


class Discriminator(nn.Module):
    """64x64 RGB in [0, 1] -> realness score (hinge loss), spectrally normalized."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        sn = nn.utils.spectral_norm
        self.body = nn.Sequential(
            sn(nn.Conv2d(3, w, 4, 2, 1)), _act(),
            sn(nn.Conv2d(w, 2 * w, 4, 2, 1)), _act(),
            sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)), _act(),
            sn(nn.Conv2d(4 * w, 8 * w, 4, 2, 1)), _act(),
        )
        self.fc = sn(nn.Linear(8 * w * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x * 2 - 1).flatten(1)).squeeze(1)


class LatentPrior(nn.Module):
    """Factorized entropy model of the v2 latent: each of the ``zdim`` integer-step latents
    is a Gaussian with a learned mean and scale, integrated over its quantization bin.
    The shipped file stores integer frequency tables derived from it (see
    :func:`gancomp.train.ganinv.factorized_tables`), so coding never uses floats."""

    def __init__(self, zdim: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(zdim))
        self.log_scale = nn.Parameter(torch.full((zdim,), 1.0))

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp_min(0.11)

    def bits(self, y: torch.Tensor) -> torch.Tensor:
        """(N,) bits of latents y (N, zdim) under the prior, bins of width 1 around y."""
        s = self.scale()
        d = torch.distributions.Normal(self.loc, s)
        c = (y - self.loc).abs()  # symmetric: use the upper tail for precision
        upper = d.cdf(self.loc - c + 0.5)
        lower = d.cdf(self.loc - c - 0.5)
        p = (upper - lower).clamp_min(1e-9)
        return -torch.log2(p).sum(1)

    def sample(self, n: int) -> torch.Tensor:
        return self.loc + self.scale() * torch.randn(n, self.loc.numel(), device=self.loc.device)


def build(config: dict[str, Any]) -> tuple[Generator, Encoder]:
    """The generator and encoder of a config (see :data:`CONFIGS`)."""
    return Generator(config["zdim"], config["width"]), Encoder(config["zdim"], config["width"])


def _gauss_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    c = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(c ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (N,) of [0, 1] images: Gaussian 11x11 window, sigma 1.5, no padding
    (the definition of pytorch_msssim, re-implemented so that training needs only torch)."""
    n, c = a.shape[:2]
    g = _gauss_window().to(device=a.device, dtype=a.dtype)
    wh, ww = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, wh, groups=c), ww, groups=c)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu1, mu2 = blur(a), blur(b)
    s11 = blur(a * a) - mu1 ** 2
    s22 = blur(b * b) - mu2 ** 2
    s12 = blur(a * b) - mu1 * mu2
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    ssim_map = (2 * mu1 * mu2 + c1) / (mu1 ** 2 + mu2 ** 2 + c1) * cs
    return ssim_map.flatten(2).mean(-1).mean(1)
