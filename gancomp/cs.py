"""Compressive sensing with a generator prior (seed 003, after Bora et al. 2017), and the
wavelet-sparsity baseline it is compared with.

An image x (N = H·W·3 values in [0, 1]) is observed only through y = A x, with A a Gaussian
M x N matrix (entries N(0, 1/M)). :func:`recover_generator` finds the latent u minimizing
||A G(u) − y||² (Adam, restarts from random latents); :func:`recover_wavelet` solves
min_c ½||A Wᵀc − y||² + λ||c||₁ over orthonormal db4 coefficients c with FISTA.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import InputError
from .nn import one_thread
from .nn.adam import Adam


def gaussian_matrix(m: int, n: int, seed: int = 0) -> np.ndarray:
    """An M x N float32 measurement matrix with i.i.d. N(0, 1/M) entries."""
    if not (1 <= m <= n):
        raise InputError(f"need 1 <= M <= N, got M={m}, N={n}")
    rng = np.random.Generator(np.random.PCG64(seed))
    return (rng.standard_normal((m, n)) / math.sqrt(m)).astype(np.float32)


def measure(image: np.ndarray, a: np.ndarray) -> np.ndarray:
    """y = A x for a uint8 (H, W, 3) image scaled to [0, 1] (channel-last flattening)."""
    return a @ (image.astype(np.float32).ravel() / 255.0)


def _to_u8(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(np.round(x.reshape(shape) * 255), 0, 255).astype(np.uint8)


def recover_generator(y: np.ndarray, a: np.ndarray, model=None, *, steps: int = 300,
                      restarts: int = 4, lr: float = 0.05, prior: float = 1e-3,
                      seed: int = 0) -> np.ndarray:
    """Recover a 64x64 face from y = A x with the gan-inversion generator as the prior; returns
    the uint8 (64, 64, 3) image G(u*) of the restart with the smallest measurement error."""
    from . import inversion

    model = model or inversion.load_model()
    with one_thread():
        return _recover_generator(y, a, model, steps, restarts, lr, prior, seed)


def _recover_generator(y, a, model, steps, restarts, lr, prior, seed) -> np.ndarray:
    from . import inversion

    n = inversion.N_PIXELS
    if a.shape[1] != n or y.shape != (a.shape[0],):
        raise InputError(f"A must be M x {n} and y of length M")
    at = torch.from_numpy(np.ascontiguousarray(a))
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(restarts, model.zdim, generator=gen).requires_grad_(True)
    opt = Adam([u], lr=lr)

    def residual(v: torch.Tensor) -> torch.Tensor:
        x = inversion.synth(model, v).permute(0, 2, 3, 1).reshape(v.shape[0], n)
        return ((x @ at.T - yt) ** 2).sum(1)

    for i in range(steps):
        opt.lr = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / steps)))
        loss = residual(u) + prior * (u ** 2).sum(1)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        best = int(residual(u).argmin())
        x = inversion.synth(model, u[best:best + 1])
    return inversion.to_u8(x)[0]


def _wavelet_ops(shape: tuple[int, int, int], wavelet: str, level: int):
    import pywt

    h, w, c = shape
    template = pywt.wavedec2(np.zeros((c, h, w)), wavelet, mode="periodization", level=level,
                             axes=(-2, -1))
    _, slices = pywt.coeffs_to_array(template, axes=(-2, -1))

    def fwd(x: np.ndarray) -> np.ndarray:   # (N,) channel-last pixels -> coefficient array
        img = x.reshape(h, w, c).transpose(2, 0, 1)
        arr, _ = pywt.coeffs_to_array(pywt.wavedec2(img, wavelet, mode="periodization",
                                                    level=level, axes=(-2, -1)), axes=(-2, -1))
        return arr

    def inv(arr: np.ndarray) -> np.ndarray:
        co = pywt.array_to_coeffs(arr, slices, output_format="wavedec2")
        img = pywt.waverec2(co, wavelet, mode="periodization", axes=(-2, -1))
        return img.transpose(1, 2, 0).ravel()

    ll = tuple(slices[0])[-2:]
    return fwd, inv, ll


def recover_wavelet(y: np.ndarray, a: np.ndarray, shape: tuple[int, int, int], *,
                    wavelet: str = "db4", level: int = 3, lam: float = 3e-2,
                    iters: int = 300) -> np.ndarray:
    """Recover a uint8 image of ``shape`` (H, W, 3) from y = A x by l1-regularized db4
    coefficients (FISTA; the low-pass band is not penalized)."""
    if a.shape[1] != int(np.prod(shape)) or y.shape != (a.shape[0],):
        raise InputError("A must be M x H*W*C and y of length M")
    import warnings

    a64 = np.ascontiguousarray(a, dtype=np.float32)
    y64 = np.asarray(y, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fwd, inv, ll = _wavelet_ops(shape, wavelet, level)
        v = np.random.default_rng(0).standard_normal(a.shape[1])
        for _ in range(30):                      # power iteration for ||A||^2
            v = a64.T @ (a64 @ v)
            v /= np.linalg.norm(v)
        lip = float(np.linalg.norm(a64 @ v) ** 2) * 1.01
        c = fwd(a64.T @ y64)
        z, t = c.copy(), 1.0
        mask = np.ones_like(c, dtype=bool)
        mask[(slice(None),) + ll] = False         # leave the low-pass band unpenalized
        for _ in range(iters):
            g = fwd(a64.T @ (a64 @ inv(z) - y64))
            c_new = z - g / lip
            shrunk = np.sign(c_new) * np.maximum(np.abs(c_new) - lam / lip, 0)
            c_new = np.where(mask, shrunk, c_new)
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            z = c_new + (t - 1) / t_new * (c_new - c)
            c, t = c_new, t_new
        return _to_u8(inv(c), shape)
