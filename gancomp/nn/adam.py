"""Adam for the few-parameter optimizations done at encode time (latent search, fine-tuning).

The same update as ``torch.optim.Adam`` with default betas and eps. It exists because
constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (about 1.4 s here),
which dominated a one-face ``gancomp encode``.
"""

from __future__ import annotations

import math

import torch


class Adam:
    """Adam over a list of leaf tensors; set ``lr`` between steps for a schedule."""

    def __init__(self, params: list[torch.Tensor], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr = lr
        self.b1, self.b2 = betas
        self.eps = eps
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1 = 1 - self.b1 ** self.t
        c2 = math.sqrt(1 - self.b2 ** self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad
            m.lerp_(g, 1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            p.addcdiv_(m, (v.sqrt() / c2).add_(self.eps), value=-self.lr / c1)
