"""Mean-scale hyperprior model (Ballé et al. 2018; Minnen et al. 2018) with gain units for
continuous variable rate (Cui et al. 2021), in torch for training.

x -> g_a -> y; y_g = y * gain(t); z = h_a(y_g); (mu, log sigma) = h_s(round(z));
y_g coded as round(y_g - mu) under N(0, sigma); x_hat = g_s(y_hat * inv_gain(t)).

``t`` in [0, levels - 1] is the continuous rate position: gains and lambda are interpolated
between the trained levels in the log domain. The entropy parameters live in the gained
domain, so the decoder-side integer network (see :mod:`gancomp.nn.intnet`) never needs t.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .gdn import GDN, _LowerBound

SCALE_MIN = 0.11
LIKELIHOOD_MIN = 1e-9


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """max(x, bound) whose gradient still reaches elements below the bound when it would
    raise them (clamp_min gives those no gradient at all, so they could never recover)."""
    return _LowerBound.apply(x, bound)


def _conv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def _deconv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


class FactorizedPrior(nn.Module):
    """Ballé's non-parametric per-channel density for the hyper-latent z (the
    "EntropyBottleneck"): a monotone per-channel MLP gives the CDF."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, v: torch.Tensor) -> torch.Tensor:
        """v: (C, 1, n) -> CDF logits (C, 1, n)."""
        x = v
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(round bin of z) for z (B, C, H, W)."""
        c = z.shape[1]
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lo = self.logits_cdf(v - 0.5)
        hi = self.logits_cdf(v + 0.5)
        sign = -torch.sign(lo + hi).detach()
        p = torch.abs(torch.sigmoid(sign * hi) - torch.sigmoid(sign * lo))
        return p.reshape(c, z.shape[0], z.shape[2], z.shape[3]).permute(1, 0, 2, 3)

    @torch.no_grad()
    def pmf(self, radius: int) -> torch.Tensor:
        """(C, 2*radius+1) probabilities of integers -radius..radius, plus tail mass column."""
        c = self.matrices[0].shape[0]
        v = torch.arange(-radius, radius + 1, dtype=torch.float32).repeat(c, 1, 1)
        lo = torch.sigmoid(self.logits_cdf(v - 0.5))[:, 0]
        hi = torch.sigmoid(self.logits_cdf(v + 0.5))[:, 0]
        p = (hi - lo).clamp_min(0)
        tail = (lo[:, :1] + 1 - hi[:, -1:]).clamp_min(0)
        return torch.cat([p, tail], dim=1)


def gaussian_likelihood(v: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """P(round bin) of v ~ N(0, scale), v already centred."""
    v = torch.abs(v)
    s = lower_bound(scale, SCALE_MIN)
    hi = 0.5 * torch.erfc(-(0.5 - v) / (s * math.sqrt(2)))
    lo = 0.5 * torch.erfc(-(-0.5 - v) / (s * math.sqrt(2)))
    return hi - lo


def build_transforms(m: nn.Module, N: int, M: int, Nh: int, lambdas: tuple[float, ...]) -> None:
    """Give ``m`` the transforms of the mean-scale hyperprior (g_a, g_s, h_a, h_s), the
    factorized prior on z and one gain vector per lambda. The hyperprior and generative models
    share them, with the same parameter names, so one file layout loads into either."""
    m.N, m.M, m.Nh = N, M, Nh
    m.register_buffer("log_lambdas", torch.log(torch.tensor(lambdas, dtype=torch.float32)))
    m.g_a = nn.Sequential(_conv(3, N), GDN(N), _conv(N, N), GDN(N), _conv(N, N), GDN(N),
                          _conv(N, M))
    m.g_s = nn.Sequential(_deconv(M, N), GDN(N, inverse=True), _deconv(N, N),
                          GDN(N, inverse=True), _deconv(N, N), GDN(N, inverse=True),
                          _deconv(N, 3))
    m.h_a = nn.Sequential(_conv(M, Nh, 3, 1), nn.ReLU(), _conv(Nh, Nh), nn.ReLU(), _conv(Nh, Nh))
    m.h_s = nn.Sequential(_deconv(Nh, Nh), nn.ReLU(), _deconv(Nh, Nh * 3 // 2), nn.ReLU(),
                          _conv(Nh * 3 // 2, 2 * M, 3, 1))
    m.prior = FactorizedPrior(Nh)
    # gain ~ sqrt(lambda) makes the quantizer step fit each level from the start
    lg = 0.5 * (m.log_lambdas - m.log_lambdas.mean())
    m.log_gain = nn.Parameter(lg[:, None].repeat(1, M).clone())
    m.log_inv_gain = nn.Parameter(-lg[:, None].repeat(1, M).clone())


class HyperpriorModel(nn.Module):
    """The mean-scale hyperprior with ``levels`` gain vectors (one per trained lambda)."""

    def __init__(self, N: int = 64, M: int = 128, Nh: int | None = None,
                 lambdas: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.05)):
        super().__init__()
        build_transforms(self, N, M, Nh or N, lambdas)
        # rate-aware entropy model: a log-scale offset per (level, channel) added to h_s's
        # log-scales, so the scale predicted from z can follow the rate setting (shipped as
        # integers at the fixed point of the integer h_s; zero = the hp-a1 behaviour)
        self.log_scale_offset = nn.Parameter(torch.zeros(len(lambdas), M))

    @property
    def levels(self) -> int:
        return int(self.log_lambdas.numel())

    @staticmethod
    def _interp(table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.clamp(0, table.shape[0] - 1)
        i = t.floor().long().clamp(max=table.shape[0] - 2)
        f = (t - i.to(t.dtype)).unsqueeze(-1) if table.dim() == 2 else t - i.to(t.dtype)
        return table[i] * (1 - f) + table[i + 1] * f

    def gains(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, M, 1, 1) gain and inverse gain at rate positions t (B,)."""
        g = torch.exp(self._interp(self.log_gain, t))[:, :, None, None]
        ig = torch.exp(self._interp(self.log_inv_gain, t))[:, :, None, None]
        return g, ig

    def scale_offset(self, t: torch.Tensor) -> torch.Tensor:
        """(B, M, 1, 1) log-scale offsets at rate positions t (B,)."""
        return self._interp(self.log_scale_offset, t)[:, :, None, None]

    def lam(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self._interp(self.log_lambdas, t))

    def entropy_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float h_s: means and log-scales of y_g (the integer version ships for coding)."""
        mu, log_s = self.h_s(z_hat).chunk(2, dim=1)
        return mu, log_s

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass: reconstruction plus likelihoods (noise for rate, STE for pixels)."""
        g, ig = self.gains(t)
        y = self.g_a(x).float() * g       # latents in float32 under AMP (bf16 steps are coarse)
        z = self.h_a(y).float()
        z_t = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else torch.round(z)
        with torch.autocast(z.device.type, enabled=False):  # likelihoods in float32 under AMP
            z_lik = self.prior.likelihood(z_t.float())
        mu, log_s = self.entropy_params(z_t)
        mu, log_s = mu.float(), log_s.float() + self.scale_offset(t)
        scale = torch.exp(log_s)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y - mu) + mu
        y_lik = gaussian_likelihood(y_noisy - mu, scale)
        y_hat = ste_round(y - mu) + mu
        x_hat = self.g_s(y_hat * ig)
        return {"x_hat": x_hat, "y_lik": y_lik, "z_lik": z_lik}
