"""Integer networks evaluated exactly in float64 (Ballé et al., ICLR 2019, simplified).

Weights, biases and activations are integers (fixed point); every product and every partial
sum stays below 2^53, so float64 arithmetic is exact in any summation order: BLAS, thread
count, CPU kernel set or GPU cannot change a single value. Rescaling between layers divides by
a power of two and floors, which is exact too. This is how the decoder side of the hyperprior
computes entropy-model parameters that are bit-identical everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXACT = float(2 ** 53)
ACT_LIMIT = float(2 ** 24)   # activations are clamped to +-2^24 (fixed point)


@dataclass
class IntLayer:
    """One conv layer in fixed point.

    ``weight``: (O, I, k, k) integers at scale 2^w_frac, in plain-convolution layout
    (transposed convolutions are converted: flipped kernel on a zero-inserted input).
    ``bias``: (O,) integers at scale 2^(in_frac + w_frac). Output at scale 2^out_frac.
    """

    weight: np.ndarray
    bias: np.ndarray
    upsample: int        # 2: transposed conv with stride 2 (zero insertion), 1: none
    stride: int
    pad: tuple[int, int]  # (before, after) on each spatial axis, after zero insertion
    in_frac: int
    w_frac: int
    out_frac: int
    relu: bool

    def meta(self) -> np.ndarray:
        return np.array([self.upsample, self.stride, self.pad[0], self.pad[1], self.in_frac,
                         self.w_frac, self.out_frac, int(self.relu)], dtype=np.int64)

    @classmethod
    def from_arrays(cls, weight: np.ndarray, bias: np.ndarray, meta: np.ndarray) -> "IntLayer":
        m = [int(v) for v in meta]
        return cls(np.asarray(weight, np.float64), np.asarray(bias, np.float64), m[0], m[1],
                   (m[2], m[3]), m[4], m[5], m[6], bool(m[7]))

    def check(self) -> None:
        """Raise ValueError unless every sum of this layer is exact in float64."""
        w = np.abs(np.asarray(self.weight, np.float64))
        fan = w.reshape(w.shape[0], -1).sum(axis=1)
        worst = float(fan.max() * ACT_LIMIT + np.abs(self.bias).max())
        if not worst < EXACT or np.any(self.weight != np.round(self.weight)) \
                or np.any(self.bias != np.round(self.bias)):
            raise ValueError("integer layer may exceed the exact float64 range")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: (C, H, W) float64 holding integers at scale 2^in_frac."""
        c, h, w = x.shape
        if self.upsample > 1:
            u = np.zeros((c, (h - 1) * self.upsample + 1, (w - 1) * self.upsample + 1))
            u[:, ::self.upsample, ::self.upsample] = x
            x = u
        a, b = self.pad
        x = np.pad(x, ((0, 0), (a, b), (a, b)))
        o, _, k, _ = self.weight.shape
        s = self.stride
        ho = (x.shape[1] - k) // s + 1
        wo = (x.shape[2] - k) // s + 1
        # im2col then one matrix product; torch's BLAS (its own thread pool) rather than
        # numpy's, whose OpenBLAS threads thrash on a busy machine. Exact either way.
        cols = np.empty((c, k, k, ho * wo))
        for ky in range(k):
            for kx in range(k):
                cols[:, ky, kx] = x[:, ky:ky + s * (ho - 1) + 1:s, kx:kx + s * (wo - 1) + 1:s].reshape(c, -1)
        acc = _matmul(self.weight.reshape(o, -1), cols.reshape(c * k * k, -1))
        acc += self.bias[:, None]
        out = np.floor(acc / 2.0 ** (self.in_frac + self.w_frac - self.out_frac))
        if self.relu:
            out = np.maximum(out, 0)
        return np.clip(out, -ACT_LIMIT, ACT_LIMIT).reshape(o, ho, wo)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch

    return torch.mm(torch.from_numpy(np.ascontiguousarray(a)),
                    torch.from_numpy(np.ascontiguousarray(b))).numpy()


def run(layers: list[IntLayer], x: np.ndarray) -> np.ndarray:
    """Evaluate a stack of integer layers on integer input (C, H, W)."""
    x = np.clip(np.asarray(x, np.float64), -ACT_LIMIT, ACT_LIMIT)
    for layer in layers:
        x = layer(x)
    return x


def quantize_conv(weight: np.ndarray, bias: np.ndarray, transposed: bool, stride: int,
                  padding: int, output_padding: int, in_frac: int, out_frac: int, relu: bool,
                  max_weight_bits: int = 15) -> IntLayer:
    """Turn a float (transposed) conv into an :class:`IntLayer` (post-training quantization)."""
    weight = np.asarray(weight, np.float64)
    k = weight.shape[-1]
    if transposed:  # (I, O, k, k) -> conv layout, flipped
        weight = weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        up, st = stride, 1
        pad = (k - 1 - padding, k - 1 - padding + output_padding)
    else:
        up, st = 1, stride
        pad = (padding, padding)
    peak = float(np.abs(weight).max()) or 1.0
    w_frac = int(min(16, np.floor(max_weight_bits - np.log2(peak) - 1e-9)))
    layer = IntLayer(np.round(weight * 2.0 ** w_frac), np.round(np.asarray(bias, np.float64) *
                     2.0 ** (in_frac + w_frac)), up, st, pad, in_frac, w_frac, out_frac, relu)
    layer.check()
    return layer
