"""The block autoencoder of seed 001 (CNN-AE), made a real codec: trained on 32x32 blocks
with a rate term, gain units for a continuous quality (Cui et al. 2021, as in the hyperprior
codec), and a lapped linear path beside the nonlinear one.

Stride 4: a 32x32 block becomes an 8x8xC latent. Both transforms are fully convolutional, so
a whole image is coded as a grid of blocks whose latents form one seamless latent image; the
synthesis reads neighbouring blocks' latents (overlapping windows), which is the deblocking
the seed asked for -- no block grid survives decoding.

    y   = (g_a(x - .5) + skip_a(x - .5)) * gain(t)          coded as integers round(y)
    x^  = .5 + tail(head(y^ * inv_gain(t))) + skip_s(y^ * inv_gain(t))

``tail`` is a 3x3 conv to 12 channels + pixel shuffle: its centre tap and bias are the
"narrow part of the decoder" that ``--finetune`` refits per image. The rate term in training
is a zero-mean Gaussian per level and channel (reusing the hyperprior's likelihood); the
coder does better than that with per-block scale offsets chosen by the encoder.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .gdn import GDN
from .hyperprior import gaussian_likelihood, ste_round

BLOCK = 32
STRIDE = 4
LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3)


class DGDN(GDN):
    """GDN that computes in its input's dtype (float64 decoding stays float64)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = self.beta.to(x.dtype).clamp_min(self._beta_bound) ** 2 - self._pedestal
        gamma = self.gamma.to(x.dtype).clamp_min(self._gamma_bound) ** 2 - self._pedestal
        if self.training:
            return super().forward(x)
        norm = torch.sqrt(F.conv2d(x * x, gamma.view(c, c, 1, 1), beta))
        return x * norm if self.inverse else x / norm


def _conv(cin: int, cout: int, k: int, s: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


class Synthesis(nn.Module):
    """y^ (gain removed) -> image; ``head`` gives the half-resolution features of ``tail``."""

    def __init__(self, N: int, C: int) -> None:
        super().__init__()
        self.head = nn.Sequential(_conv(C, N, 3), DGDN(N, inverse=True), _conv(N, 4 * N, 3),
                                  nn.PixelShuffle(2), DGDN(N, inverse=True))
        self.tail = _conv(N, 12, 3)
        self.skip = nn.ConvTranspose2d(C, 3, 8, stride=4, padding=2)

    def features(self, y: torch.Tensor) -> torch.Tensor:
        return self.head(y)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return 0.5 + F.pixel_shuffle(self.tail(self.head(y)), 2) + self.skip(y)


class BlockAE(nn.Module):
    """One autoencoder with ``len(lambdas)`` rate levels (gain vectors)."""

    def __init__(self, N: int = 64, C: int = 48, lambdas: tuple[float, ...] = LAMBDAS) -> None:
        super().__init__()
        self.N, self.C = N, C
        self.register_buffer("log_lambdas", torch.log(torch.tensor(lambdas, dtype=torch.float32)))
        self.g_a = nn.Sequential(_conv(3, N, 5, 2), DGDN(N), _conv(N, N, 5, 2), DGDN(N),
                                 _conv(N, C, 3))
        self.skip_a = nn.Conv2d(3, C, 8, stride=4, padding=2)
        self.g_s = Synthesis(N, C)
        L = len(lambdas)
        lg = 0.5 * (self.log_lambdas - self.log_lambdas.mean())
        self.log_gain = nn.Parameter(lg[:, None].repeat(1, C).clone())
        self.log_inv_gain = nn.Parameter(-lg[:, None].repeat(1, C).clone())
        self.log_scale = nn.Parameter(torch.zeros(L, C))

    @property
    def levels(self) -> int:
        return int(self.log_lambdas.numel())

    def _interp(self, table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.clamp(0, self.levels - 1).to(table.dtype)
        i = t.floor().long().clamp(max=self.levels - 2)
        f = t - i.to(t.dtype)
        if table.dim() == 2:
            f = f[:, None]
        return table[i] * (1 - f) + table[i + 1] * f

    def gains(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, 1, 1) gain and inverse gain at rate positions t (B,)."""
        g = torch.exp(self._interp(self.log_gain, t))[:, :, None, None]
        ig = torch.exp(self._interp(self.log_inv_gain, t))[:, :, None, None]
        return g, ig

    def lam(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self._interp(self.log_lambdas, t))

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """Image in [0, 1] -> un-gained latent."""
        return self.g_a(x - 0.5) + self.skip_a(x - 0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass: reconstruction and bits per sample (noise for rate, STE for pixels)."""
        g, ig = self.gains(t)
        y = self.analysis(x).float() * g.float()
        noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y)
        scale = torch.exp(self._interp(self.log_scale, t))[:, :, None, None]
        lik = gaussian_likelihood(noisy, scale.expand_as(noisy))
        bits = (-torch.log2(lik.float().clamp_min(1e-9))).sum((1, 2, 3))
        x_hat = self.g_s(ste_round(y) * ig)
        return {"x_hat": x_hat, "bits": bits, "y": y}


class PatchD(nn.Module):
    """A small patch discriminator for the GAN decoder (least-squares GAN)."""

    def __init__(self, N: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, N, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(N, 2 * N, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * N, 2 * N, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * N, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - 0.5)

    def scales(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """One scale: the activations after each LeakyReLU, then the score map (the form
        :func:`gancomp.train.gen_common.lsgan_generator_losses` takes)."""
        feats, h = [], x - 0.5
        for layer in self.net:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(h)
        return [feats + [h]]


class Upsampler(nn.Module):
    """The generator that decodes a 2x downsampled image (seed 001's first GAN variant): the
    coarse first pass of ``ae --down 2``; ``up.*`` is trained with L2 only, ``upg.*`` (same
    architecture) with L2 + a least-squares GAN loss (``upsampler=gan``). A learned bilinear-
    initialised transposed conv plus a small residual CNN whose output is pixel-shuffled.

        x^ = .5 + skip(z - .5) + shuffle(body(z - .5))      z: decoded half-resolution image
    """

    def __init__(self, N: int = 48, depth: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv(3, N, 3), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [_conv(N, N, 3), nn.ReLU()]
        layers.append(_conv(N, 12, 3))
        self.body = nn.Sequential(*layers)
        self.skip = nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            k1 = torch.tensor([0.25, 0.75, 0.75, 0.25])
            self.skip.weight.zero_()
            for c in range(3):
                self.skip.weight[c, c] = k1[:, None] * k1[None, :]
            self.body[-1].weight.mul_(0.1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 0.5 + self.skip(z - 0.5) + F.pixel_shuffle(self.body(z - 0.5), 2)


def downsample(x: torch.Tensor) -> torch.Tensor:
    """The encoder's 2x downsampling (2x2 box mean), shared by training and the codec."""
    return F.avg_pool2d(x, 2)
