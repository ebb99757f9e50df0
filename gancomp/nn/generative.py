"""Generative compression networks (seed 002, in the line of HiFiC, Mentzer et al. 2020).

One quantized latent, two decoders:

- the rate path is a mean-scale hyperprior (the entropy layer of :mod:`gancomp.nn.hyperprior`:
  factorized prior on z, Gaussian conditional on y, gain units for a continuous rate, here
  with lambdas for very low rates and an optional *spatial* rate map so that chosen regions
  can be coded at a higher rate than the rest);
- ``g_s`` is the MSE synthesis of the latent (trained with the rate term, beta * H);
- ``gen`` is a GAN generator conditioned on the same dequantized latent (and on g_s's output,
  which it refines), with an optional noise channel. It is trained with least-squares GAN
  loss against a multi-scale discriminator plus MSE, MS-SSIM and discriminator feature
  matching. Its gradient does not reach the encoder, so g_s stays the MSE-optimal decoder
  of exactly the latent the file holds and either decoder can be picked at decode time.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .hyperprior import SCALE_MIN, build_transforms, gaussian_likelihood, ste_round

DOWN = 16          # latent stride
HYPER_DOWN = 64    # hyper-latent stride (images are padded to a multiple of it)


class _Up(nn.Module):
    """Nearest x2 upsampling, then a residual pair of 3x3 convolutions (no checkerboards)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(cin, cout, 3, padding=1)
        self.c1 = nn.Conv2d(cout, cout, 3, padding=1)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x + self.c2(F.leaky_relu(self.c1(F.leaky_relu(x, 0.2)), 0.2))


class Generator(nn.Module):
    """x_gan = x_mse + R(latent, x_mse, noise): four x2 stages from the latent grid to pixels,
    joined at full resolution with the MSE reconstruction (and a noise plane)."""

    def __init__(self, M: int, width: int = 32, noise: bool = True, last: int = 0) -> None:
        super().__init__()
        w = width
        f = last or w  # channels at full resolution (fewer: faster float64 decoding)
        self.noise = noise
        self.head = nn.Conv2d(M, 4 * w, 3, padding=1)
        self.ups = nn.Sequential(_Up(4 * w, 3 * w), _Up(3 * w, 2 * w), _Up(2 * w, w),
                                 _Up(w, f))
        self.join = nn.Conv2d(f + 3 + int(noise), f, 3, padding=1)
        self.mid = nn.Conv2d(f, f, 3, padding=1)
        self.out = nn.Conv2d(f, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def noise_shape(self, x_mse: torch.Tensor) -> tuple[int, int, int, int]:
        return (x_mse.shape[0], 1, x_mse.shape[2], x_mse.shape[3])

    def forward(self, y: torch.Tensor, x_mse: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ups(F.leaky_relu(self.head(y), 0.2))
        parts = [h, x_mse * 2 - 1]
        if self.noise:
            parts.append(noise if noise is not None else torch.randn_like(x_mse[:, :1]))
        h = F.leaky_relu(self.join(torch.cat(parts, 1)), 0.2)
        h = h + F.leaky_relu(self.mid(h), 0.2)
        return x_mse + self.out(h)


class HalfGenerator(nn.Module):
    """Generator v2: x_gan = x_mse + shuffle(R(latent, unshuffle(x_mse), noise)). All its
    convolutions run at half resolution or below (the MSE reconstruction enters as 12
    pixel-unshuffled channels, the residual leaves as 12 channels pixel-shuffled to full
    resolution), so a float64 decode costs about a third of :class:`Generator`'s."""

    def __init__(self, M: int, width: int = 24, noise: bool = True, blocks: int = 2) -> None:
        super().__init__()
        w = width
        self.noise = noise
        self.head = nn.Conv2d(M, 4 * w, 3, padding=1)
        self.ups = nn.Sequential(_Up(4 * w, 3 * w), _Up(3 * w, 2 * w), _Up(2 * w, w))
        self.join = nn.Conv2d(w + 12 + int(noise), w, 3, padding=1)
        self.res = nn.ModuleList(nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.LeakyReLU(0.2),
                                               nn.Conv2d(w, w, 3, padding=1))
                                 for _ in range(blocks))
        self.out = nn.Conv2d(w, 12, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def noise_shape(self, x_mse: torch.Tensor) -> tuple[int, int, int, int]:
        return (x_mse.shape[0], 1, x_mse.shape[2] // 2, x_mse.shape[3] // 2)

    def forward(self, y: torch.Tensor, x_mse: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ups(F.leaky_relu(self.head(y), 0.2))
        parts = [h, F.pixel_unshuffle(x_mse * 2 - 1, 2)]
        if self.noise:
            parts.append(noise if noise is not None else
                         torch.randn(self.noise_shape(x_mse), dtype=x_mse.dtype, device=x_mse.device))
        h = F.leaky_relu(self.join(torch.cat(parts, 1)), 0.2)
        for r in self.res:
            h = h + r(h)
        return x_mse + F.pixel_shuffle(self.out(F.leaky_relu(h, 0.2)), 2)


class GenerativeModel(nn.Module):
    """Encoder, hyperprior entropy model with gain units, MSE synthesis and GAN generator."""

    def __init__(self, N: int = 64, M: int = 96, Nh: int = 64,
                 lambdas: tuple[float, ...] = (0.0002, 0.0008, 0.003, 0.012),
                 gen_width: int = 32, noise: bool = True, gen_last: int = 0,
                 gen_kind: int = 1) -> None:
        super().__init__()
        build_transforms(self, N, M, Nh, lambdas)
        self.gen_kind = gen_kind
        self.gen = (Generator(M, gen_width, noise, gen_last) if gen_kind == 1
                    else HalfGenerator(M, gen_width, noise, max(1, gen_last)))

    @property
    def levels(self) -> int:
        return int(self.log_lambdas.numel())

    @staticmethod
    def _interp(table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Log-domain interpolation of per-level rows at positions t (any shape)."""
        t = t.clamp(0, table.shape[0] - 1)
        i = t.floor().long().clamp(max=table.shape[0] - 2)
        f = t - i.to(t.dtype)
        if table.dim() == 2:
            f = f.unsqueeze(-1)
        return table[i] * (1 - f) + table[i + 1] * f

    def gain_maps(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain for a rate map t (B, h, w) on the latent grid: (B, M, h, w)."""
        g = torch.exp(self._interp(self.log_gain, t)).permute(0, 3, 1, 2)
        ig = torch.exp(self._interp(self.log_inv_gain, t)).permute(0, 3, 1, 2)
        return g, ig

    def lam(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self._interp(self.log_lambdas, t))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass. ``t``: (B, h, w) rate map on the latent grid."""
        g, ig = self.gain_maps(t)
        y = self.g_a(x).float() * g
        # the entropy model runs in float32 even under bf16 autocast (rounding needs it)
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self.h_a(y)
            z_t = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else torch.round(z)
            z_lik = self.prior.likelihood(z_t)
            mu, log_s = self.h_s(z_t).chunk(2, dim=1)
            scale = torch.exp(log_s).clamp_min(SCALE_MIN)
            y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training \
                else torch.round(y - mu) + mu
            y_lik = gaussian_likelihood(y_noisy - mu, scale)
            y_hat = (ste_round(y - mu) + mu) * ig
        x_mse = self.g_s(y_hat)
        return {"x_mse": x_mse, "y_hat": y_hat, "y_lik": y_lik, "z_lik": z_lik}


class Discriminator(nn.Module):
    """Multi-scale PatchGAN (pix2pixHD): one small critic per scale (x1, x1/2, ...), each
    returning its intermediate features (for feature matching) and a patch score map."""

    def __init__(self, scales: int = 2, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        self.nets = nn.ModuleList()
        for _ in range(scales):
            mods, c = [], 3
            for i in range(layers):
                c2 = width * 2 ** i
                mods.append(nn.Conv2d(c, c2, 4, stride=2, padding=1))
                c = c2
            mods.append(nn.Conv2d(c, 1, 3, padding=1))
            self.nets.append(nn.ModuleList(mods))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outs = []
        for k, net in enumerate(self.nets):
            h = x * 2 - 1 if k == 0 else F.avg_pool2d(x * 2 - 1, 2 ** k)
            feats = []
            for i, m in enumerate(net):
                h = m(h)
                if i < len(net) - 1:
                    h = F.leaky_relu(h, 0.2)
                feats.append(h)
            outs.append(feats)
        return outs


def texture_loss(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Mean L1 distance between local standard deviations (5x5 windows, per channel) of
    ``a`` and ``b`` at ``scales`` dyadic scales: asks for the right amount of local detail
    without asking for it in the right place (a blurred image scores badly, plausible texture
    of the right energy scores well). Needs no pretrained network."""
    loss = a.new_zeros(())
    for s in range(scales):
        if s:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        sa = (F.avg_pool2d(a * a, 5, 1, 2, count_include_pad=False)
              - F.avg_pool2d(a, 5, 1, 2, count_include_pad=False) ** 2).clamp_min(0)
        sb = (F.avg_pool2d(b * b, 5, 1, 2, count_include_pad=False)
              - F.avg_pool2d(b, 5, 1, 2, count_include_pad=False) ** 2).clamp_min(0)
        loss = loss + F.l1_loss((sa + 1e-6).sqrt(), (sb + 1e-6).sqrt())
    return loss / scales


def _gauss_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    c = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-c ** 2 / (2 * sigma ** 2))
    return g / g.sum()


MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM of images in [0, 1] (float32 even under autocast: variances are
    differences of moments; as many scales as the size allows, <= 5)."""
    with torch.autocast(device_type=a.device.type, enabled=False):
        return _ms_ssim_loss(a.float(), b.float())


def _ms_ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    win = _gauss_window(device=a.device)
    c = a.shape[1]
    wx = win.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wy = win.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(v, wx, groups=c), wy, groups=c)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    levels = max(1, min(5, int(math.log2(min(a.shape[-2:]) / 11)) + 1))
    w = torch.tensor(MS_WEIGHTS[:levels], device=a.device)
    w = w / w.sum()
    vals = []
    for i in range(levels):
        mu_a, mu_b = blur(a), blur(b)
        saa = blur(a * a) - mu_a ** 2
        sbb = blur(b * b) - mu_b ** 2
        sab = blur(a * b) - mu_a * mu_b
        cs = (2 * sab + c2) / (saa + sbb + c2)
        if i == levels - 1:
            ssim = ((2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)) * cs
            vals.append(ssim.mean((1, 2, 3)).clamp_min(1e-4))
        else:
            vals.append(cs.mean((1, 2, 3)).clamp_min(1e-4))
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    prod = torch.ones_like(vals[0])
    for v, wi in zip(vals, w):
        prod = prod * v ** wi
    return (1 - prod).mean()
