"""Generalized divisive normalization (Ballé et al., ICLR 2016/2017), the nonlinearity of
the hyperprior transforms: GDN in the analysis, its approximate inverse IGDN in the synthesis.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still pulls values up from below the bound."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        pass_through = (x >= ctx.bound) | (grad < 0)
        return grad * pass_through, None


class GDN(nn.Module):
    """y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2) (or times it when ``inverse``).

    beta and gamma are stored as square roots (plus a pedestal) so they stay non-negative
    and train well, as in tensorflow_compression and CompressAI.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6,
                 gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        self._pedestal = 2.0 ** -36
        self._beta_bound = (beta_min + self._pedestal) ** 0.5
        self._gamma_bound = self._pedestal ** 0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self._pedestal))
        gamma = gamma_init * torch.eye(channels) + self._pedestal
        self.gamma = nn.Parameter(torch.sqrt(gamma))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = _LowerBound.apply(self.beta, self._beta_bound) ** 2 - self._pedestal
        gamma = _LowerBound.apply(self.gamma, self._gamma_bound) ** 2 - self._pedestal
        if self.training:
            norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)
        else:
            # float32 1x1 convolutions sum in a thread-count-dependent order; in float64 the
            # sum is far more precise than the float32 result it rounds to, so decoded pixels
            # do not depend on the thread count
            norm = F.conv2d((x * x).double(), gamma.double().view(c, c, 1, 1), beta.double()).float()
        norm = torch.sqrt(norm)
        return x * norm if self.inverse else x / norm
