"""Generator v3 of ``generative``: a residual GAN generator on top of an exact wavelet2 decode.

Why: the rate path decides most of the quality at 0.1-0.2 bpp. ``wavelet2`` (the project's
default codec) is better than WebP at every rate (PSNR BD-rate), fast and bit-exact, so
version 3 of ``generative`` codes the image as a wavelet2 bitstream and lets this network
synthesize what the wavelet coder dropped (HiFiC-style residual generator conditioned on the
decode, with a noise channel). ``--decoder mse`` is the plain wavelet2 decode of the file.

x_gan = x_base + shuffle(R(unshuffle(x_base), noise, step)): all convolutions run at half
resolution or below (a small U-Net: half, quarter, eighth resolution, so it sees ~100 px of
context, as wavelet ringing and blur at low rates span tens of pixels). ``step`` is the
wavelet2 step code of the file (how coarse the base is), given as one constant channel.
Input sides must be multiples of 8 (the codec pads).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STEP_CENTER = 205.0   # step codes around Kodak's 0.1-0.2 bpp (wavelet2 code 202 = quality 0)
STEP_SCALE = 20.0


def step_channel(code: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) constant channel of the normalized step code."""
    c = torch.as_tensor(code, dtype=like.dtype, device=like.device).reshape(-1, 1, 1, 1)
    return ((c - STEP_CENTER) / STEP_SCALE).expand(like.shape[0], 1, like.shape[2], like.shape[3])


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.leaky_relu(self.a(x), 0.2))


class BaseGenerator(nn.Module):
    """Residual generator conditioned on a decoded image (see the module docstring)."""

    def __init__(self, width: int = 32, noise: bool = True) -> None:
        super().__init__()
        w = width
        self.noise = noise
        self.head = nn.Conv2d(12 + 1 + int(noise), w, 3, padding=1)
        self.down1 = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)
        self.mid1 = nn.Sequential(_Res(2 * w), _Res(2 * w))
        self.down2 = nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1)
        self.mid2 = _Res(2 * w)
        self.up2 = nn.Conv2d(4 * w, 2 * w, 3, padding=1)
        self.up1 = nn.Conv2d(3 * w, w, 3, padding=1)
        self.tail = _Res(w)
        self.out = nn.Conv2d(w, 12, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def noise_shape(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        return (x.shape[0], 1, x.shape[2] // 2, x.shape[3] // 2)

    def residual(self, x: torch.Tensor, step: torch.Tensor | float,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """The full-resolution residual to add to ``x`` (B, 3, H, W) in [0, 1]."""
        u = F.pixel_unshuffle(x * 2 - 1, 2)
        parts = [u, step_channel(step, u)]
        if self.noise:
            parts.append(noise if noise is not None else
                         torch.randn(self.noise_shape(x), dtype=x.dtype, device=x.device))
        a = F.leaky_relu(self.head(torch.cat(parts, 1)), 0.2)
        b = self.mid1(F.leaky_relu(self.down1(a), 0.2))
        c = self.mid2(F.leaky_relu(self.down2(b), 0.2))
        b = F.leaky_relu(self.up2(torch.cat([b, F.interpolate(c, scale_factor=2.0)], 1)), 0.2)
        a = F.leaky_relu(self.up1(torch.cat([a, F.interpolate(b, scale_factor=2.0)], 1)), 0.2)
        return F.pixel_shuffle(self.out(F.leaky_relu(self.tail(a), 0.2)), 2)

    def forward(self, x: torch.Tensor, step: torch.Tensor | float,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.residual(x, step, noise)
