"""Networks of the ``ablative`` codec (seed 004): a feed-forward inpainting network that fills
the removed blocks, and the small feature network trained here (self-supervised rotation
prediction) whose activations give the seed's style (Gram) and content losses.

The inpainting network starts from a push-pull fill (pyramid averages of the kept pixels,
a smooth interpolation of the holes) and adds a learned residual from a small U-Net with
dilated convolutions at its bottleneck; kept pixels are pasted back after it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def push_pull(x: torch.Tensor, m: torch.Tensor, levels: int = 6) -> torch.Tensor:
    """Fill pixels where m == 0 by averaging kept pixels over a pyramid (coarsest last)."""
    xs, ms = [x * m], [m]
    for _ in range(levels):
        if min(xs[-1].shape[-2:]) < 2:
            break
        xs.append(F.avg_pool2d(xs[-1], 2, ceil_mode=True))
        ms.append(F.avg_pool2d(ms[-1], 2, ceil_mode=True))
    est = xs[-1] / ms[-1].clamp_min(1e-6)
    for xi, mi in zip(reversed(xs[:-1]), reversed(ms[:-1])):
        up = F.interpolate(est, size=xi.shape[-2:], mode="bilinear", align_corners=False)
        own = xi / mi.clamp_min(1e-6)
        w = mi.clamp(0, 1)
        est = w * own + (1 - w) * up
    return est


def _block(cin: int, cout: int, stride: int = 1, dil: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dil, dilation=dil),
                         nn.LeakyReLU(0.2))


class InpaintNet(nn.Module):
    """(kept RGB in [0,1] with zeros elsewhere, pixel mask) -> full image in [0,1]."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.e0 = _block(7, w)
        self.e1 = _block(w, 2 * w, 2)
        self.e2 = _block(2 * w, 3 * w, 2)
        self.e3 = _block(3 * w, 4 * w, 2)
        self.mid = nn.ModuleList([_block(4 * w, 4 * w, 1, d) for d in (2, 4, 8, 1)])
        self.d2 = _block(4 * w + 3 * w, 3 * w)
        self.d1 = _block(3 * w + 2 * w, w)      # narrow near full resolution: decoding
        self.d0 = _block(w + w, w)              # runs in float64 on CPUs
        self.out = nn.Conv2d(w, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, kept: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fill = push_pull(kept, mask)
        h0 = self.e0(torch.cat([fill * 2 - 1, kept * 2 - 1, mask], 1))
        h1 = self.e1(h0)
        h2 = self.e2(h1)
        h = self.e3(h2)
        for m in self.mid:
            h = h + m(h)

        def up(a: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
            return F.interpolate(a, size=ref.shape[-2:], mode="nearest")

        h = self.d2(torch.cat([up(h, h2), h2], 1))
        h = self.d1(torch.cat([up(h, h1), h1], 1))
        h = self.d0(torch.cat([up(h, h0), h0], 1))
        out = fill + self.out(h)
        return mask * kept + (1 - mask) * out


class FeatureNet(nn.Module):
    """Small CNN trained here to predict the rotation (0/90/180/270) of a crop; its three
    stages' activations are the features of the style and content losses."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stages = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(), nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.ReLU(), nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU()),
        ])
        self.head = nn.Linear(4 * w, 4)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, out = x * 2 - 1, []
        for s in self.stages:
            h = s(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1].mean((2, 3)))


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    v = f.reshape(b, c, h * w)
    return v @ v.transpose(1, 2) / (c * h * w)


def style_content(feat: FeatureNet, out: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(style, content) losses of the seed: Gram-matrix MSE over all stages, feature MSE of
    the last two stages, each relative to the target's energy (scale-free: the feature
    network's activations can be tiny, which made the absolute losses vanish)."""
    fo, fx = feat.features(out), feat.features(x)
    style = sum(F.mse_loss(gram(a), gb) / (gb ** 2).mean().clamp_min(1e-12)
                for a, gb in ((a, gram(b).detach()) for a, b in zip(fo, fx)))
    content = sum(F.mse_loss(a, b) / (b.detach() ** 2).mean().clamp_min(1e-12)
                  for a, b in zip(fo[1:], fx[1:]))
    return style, content


def log_filter(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Laplacian of Gaussian of the luma (the seed's edge loss operator)."""
    y = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    r = int(3 * sigma + 0.999)
    g = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    y = F.conv2d(F.pad(y, (r, r, r, r), mode="replicate"), g.view(1, 1, 1, -1))
    y = F.conv2d(y, g.view(1, 1, -1, 1))
    lap = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=x.dtype, device=x.device)
    return F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), lap.view(1, 1, 3, 3))
