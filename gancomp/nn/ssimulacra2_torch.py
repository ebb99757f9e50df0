"""A differentiable port of SSIMULACRA2 (the formula of the ``ssimulacra2`` package) in torch.

Why: SSIMULACRA2 is dominated by SSIM of the XYB luma at 1/4 and 1/8 scale and by the
"artifact" edge terms at coarse scales, not by fine texture, so a generator trained only for
texture (GAN, local-variance matching) did not move it. This port lets the generator be
trained *toward* the metric; results measured with the real package are then partly fitted to
the metric (say so wherever they are reported).

Same steps as the reference: sRGB -> linear -> XYB (positive), six scales (2x2 mean
downsampling in linear RGB), Gaussian blur sigma 1.5 (separable kernel of radius 5, borders as
the reference pads them), SSIM map and edge-difference
maps with 1- and 4-norms, the published weights (taken in order over the scales computed,
which shifts them for images under 256 px per side, as in the reference) and the final
polynomial. Agreement with the
package is checked in the tests (a few tenths of a point).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

_M = torch.tensor([[0.30, 1.0 - 0.078 - 0.30, 0.078],
                   [0.23, 1.0 - 0.078 - 0.23, 0.078],
                   [0.24342268924547819, 0.20476744424496821,
                    1.0 - 0.24342268924547819 - 0.20476744424496821]], dtype=torch.float64)
_B = 0.0037930732552754493
_C2 = 0.0009


def _weights() -> torch.Tensor:
    from ssimulacra2.ssimulacra2 import weights  # the published 108 weights

    return torch.as_tensor(weights, dtype=torch.float64)


def _linear(srgb: torch.Tensor) -> torch.Tensor:
    return torch.where(srgb <= 0.04045, srgb / 12.92,
                       ((srgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def _xyb(lin: torch.Tensor) -> torch.Tensor:
    m = _M.to(lin)
    mixed = torch.einsum("ij,bjhw->bihw", m, lin) + _B
    cb = mixed.clamp_min(1e-12) ** (1 / 3) - _B ** (1 / 3)
    x = 0.5 * (cb[:, 0] - cb[:, 1])
    y = 0.5 * (cb[:, 0] + cb[:, 1])
    b = cb[:, 2]
    return torch.stack([x * 14.0 + 0.42, y + 0.01, (b - y) + 0.55], 1)


def _blur(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """The reference's blur: radius round(3.2795 sigma + 0.2546); it blurs the transposed
    image (``linear.T``) with the first axis zero-padded, so here columns are padded with
    zeros and rows mirrored half-sample (scipy's "reflect")."""
    r = int(round(3.2795 * sigma + 0.2546))
    c = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-c ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    ch = x.shape[1]
    h = x.shape[2]
    idx = torch.arange(-r, h + r, device=x.device)
    idx = torch.where(idx < 0, -idx - 1, torch.where(idx >= h, 2 * h - idx - 1, idx))
    x = x[:, :, idx.clamp(0, h - 1)]
    x = F.conv2d(x, g.view(1, 1, -1, 1).repeat(ch, 1, 1, 1), groups=ch)
    x = F.pad(x, (r, r, 0, 0))
    return F.conv2d(x, g.view(1, 1, 1, -1).repeat(ch, 1, 1, 1), groups=ch)


def _norms(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3) mean and 4-norm of a (B, 3, H, W) map."""
    return d.mean((2, 3)), ((d ** 4).mean((2, 3)) + 1e-20) ** 0.25


def raw_score(a: torch.Tensor, b: torch.Tensor, scales: int = 6,
              canonical: bool = False) -> torch.Tensor:
    """Weighted error sum (before the final mapping) per image; ``a`` reference, ``b``
    distorted, both (B, 3, H, W) sRGB in [0, 1]. ``canonical``: each scale keeps its own
    weights even when fewer than six scales fit (training crops standing in for large
    images), instead of the reference's shifted order."""
    w = _weights().to(a)
    la, lb = _linear(a), _linear(b)
    per_scale = []
    for s in range(scales):
        if min(la.shape[-2:]) < 8:
            break
        x1, x2 = _xyb(la), _xyb(lb)
        mu1, mu2 = _blur(x1), _blur(x2)
        s11, s22, s12 = _blur(x1 * x1), _blur(x2 * x2), _blur(x1 * x2)
        num_m = 1.0 - (mu1 - mu2) ** 2
        num_s = 2.0 * (s12 - mu1 * mu2) + _C2
        den_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + _C2
        ssim = (1.0 - num_m * num_s / den_s).clamp_min(0)
        d1 = (1.0 + (x2 - mu2).abs()) / (1.0 + (x1 - mu1).abs()) - 1.0
        per_scale.append([_norms(m) for m in (ssim, d1.clamp_min(0), (-d1).clamp_min(0))])
        if s < scales - 1:
            h, wd = la.shape[-2] // 2 * 2, la.shape[-1] // 2 * 2
            la = F.avg_pool2d(la[..., :h, :wd], 2)
            lb = F.avg_pool2d(lb[..., :h, :wd], 2)
    # weights are taken in order over the scales actually computed (as the reference does:
    # below 256 px per side fewer scales run and later weights shift onto earlier terms)
    total = a.new_zeros(a.shape[0])
    i = 0
    for c in range(3):
        for s, feats in enumerate(per_scale):
            for n in range(2):
                for k in range(3):
                    j = c * 36 + s * 6 + n * 3 + k if canonical else i
                    total = total + w[j] * feats[k][n][:, c].abs()
                    i += 1
    return total


def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIMULACRA2 per image (100 = identical)."""
    x = raw_score(a, b) * 0.9562382616834844
    x = 2.326765642916932 * x - 0.020884521182843837 * x * x + 6.248496625763138e-05 * x ** 3
    return torch.where(x > 0, 100.0 - 10.0 * x.clamp_min(1e-12) ** 0.6276336467831387,
                       torch.full_like(x, 100.0))


def loss(a: torch.Tensor, b: torch.Tensor, canonical: bool = False) -> torch.Tensor:
    """Training loss: the mean raw error sum (monotone in the score; 0 for identical images),
    computed in float32 even under autocast."""
    with torch.autocast(device_type=a.device.type, enabled=False):
        return raw_score(a.float(), b.float(), canonical=canonical).mean()
