"""The lossless predictor: a float MLP for training and its exact integer twin for coding.

The network maps a causal context (see :mod:`gancomp.nn.causal`) to, per colour channel, the
mean and the scale of a discretized logistic over 0..255 (truncated to that range and
renormalized). Channels are coded in the order G, R, B (gray: one channel): a shared trunk
sees the spatial context of all channels, and the head of channel k also sees the residuals
(value - MED) of the channels already coded at this pixel.

For coding, the trained weights become integers (:func:`quantize`) and the network is
evaluated in float64 on integers (:class:`IntPredictor`): every sum is an integer below
2^53, so the result does not depend on BLAS, thread count or CPU. Its outputs are integers:
the mean in 1/8 pixel and an index into a table of integer logistic frequencies stored with
the weights (:func:`logistic_table`), so both sides hand constriction identical numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import causal

ORDER = (1, 0, 2)          # code G, then R, then B (indices into RGB)
N_SCALES = 64              # scale bins of the logistic table
LOG_SMIN = math.log(0.12)  # smallest scale
LOG_SMAX = math.log(96.0)  # largest scale
MEAN_FRAC = 8              # the mean is coded in 1/8 pixel
TABLE_BITS = 22            # integer frequencies of the table sum to about 2^TABLE_BITS
IN_SHIFT = 5               # network input = pixel difference / 32
ACT_BITS = 8               # hidden activations in 1/256
ACT_MAX = float(1 << 20)   # hidden activations are clipped here (keeps sums < 2^53)
# Head k also sees, for each channel j < k coded before at this pixel: value - MED and (with
# pred_err, models from v3 on) value - the network's own mean for j.


def log_scale(idx):
    """Log of the logistic scale for a (possibly fractional) scale index."""
    return LOG_SMIN + (LOG_SMAX - LOG_SMIN) / (N_SCALES - 1) * idx


# ---------------------------------------------------------------------------------------------
# float model (training)


def build_float(hidden: int = 64, head: int = 32, channels: int = 3, context: str = "small",
                pred_err: bool = False):
    """The float torch predictor (imports torch lazily: coding needs only numpy)."""
    import torch
    from torch import nn

    class Predictor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.context = causal.Context(causal.CONTEXTS[context])
            nin = self.context.n_inputs(channels)
            self.trunk = nn.Sequential(nn.Linear(nin, hidden), nn.ReLU(),
                                       nn.Linear(hidden, hidden), nn.ReLU())
            self.heads = nn.ModuleList(
                nn.Sequential(nn.Linear(hidden + k * (1 + pred_err), head), nn.ReLU(),
                              nn.Linear(head, 2)) for k in range(channels))
            for h in self.heads:
                with torch.no_grad():
                    h[2].weight.mul_(0.1)
                    h[2].bias.copy_(torch.tensor([0.0, N_SCALES * 0.45]))
            self.config = {"hidden": hidden, "head": head, "channels": channels,
                           "context": context, "pred_err": pred_err}

        def forward(self, inputs, meds, targets):
            """inputs (N, nin) int-valued, meds/targets (N, C) in coding order -> per-channel
            (mean, scale index), each (N, C)."""
            h = self.trunk(inputs / 32.0)
            res = (targets - meds) / 32.0
            means, idxs = [], []
            errs = []
            for k, hd in enumerate(self.heads):
                extra = [res[:, :k]] + ([e[:, None] for e in errs] if pred_err else [])
                o = hd(torch.cat([h] + extra, dim=1))
                means.append(meds[:, k] + o[:, 0])
                idxs.append(o[:, 1])
                errs.append((targets[:, k] - means[-1].detach().clamp(0.0, 255.0)) / 32.0)
            return torch.stack(means, 1), torch.stack(idxs, 1)

    return Predictor()


def nll_bits(mean, idx, x):
    """Bits of x (0..255) under the logistic(mean, scale(idx)) truncated to [-0.5, 255.5]."""
    import torch
    import torch.nn.functional as F

    mean = mean.clamp(0.0, 255.0)
    logs = log_scale(idx.clamp(0.0, N_SCALES - 1.0))
    inv = torch.exp(-logs)

    def log_mass(lo, hi):  # log(sigmoid(hi) - sigmoid(lo)), stable
        return F.logsigmoid(hi) + F.logsigmoid(-lo) + torch.log(-torch.expm1(lo - hi))

    num = log_mass((x - 0.5 - mean) * inv, (x + 0.5 - mean) * inv)
    den = log_mass((-0.5 - mean) * inv, (255.5 - mean) * inv)
    return -(num - den) / math.log(2.0)


# ---------------------------------------------------------------------------------------------
# integer model (coding)


def logistic_table() -> np.ndarray:
    """Integer frequencies (N_SCALES, MEAN_FRAC, 511) of value - floor(mean) in -255..255,
    every entry >= 1. Computed once at export and stored with the weights, so decoders never
    evaluate a float exp."""
    e = np.arange(-255, 256, dtype=np.float64)
    out = np.empty((N_SCALES, MEAN_FRAC, e.size), dtype=np.int32)
    with np.errstate(over="ignore"):
        _fill_table(out, e)
    return out


def _fill_table(out: np.ndarray, e: np.ndarray) -> None:
    for s in range(N_SCALES):
        scale = math.exp(log_scale(s))
        for f in range(MEAN_FRAC):
            d = e - f / MEAN_FRAC
            cdf_hi = 1.0 / (1.0 + np.exp(-(d + 0.5) / scale))
            cdf_lo = 1.0 / (1.0 + np.exp(-(d - 0.5) / scale))
            p = np.maximum(cdf_hi - cdf_lo, 0.0)
            out[s, f] = np.maximum(1, np.round(p * (1 << TABLE_BITS))).astype(np.int32)


def _layer_bits(w: np.ndarray) -> int:
    m = float(np.abs(w).max()) or 1.0
    return int(max(0, min(16, math.floor(math.log2((2 ** 15 - 1) / m)))))


def quantize(model) -> dict[str, np.ndarray]:
    """Integer weights of a trained float predictor, plus the logistic table."""
    arrays: dict[str, np.ndarray] = {}

    def put(name: str, lin, in_bits: int) -> None:
        w = lin.weight.detach().double().numpy()
        b = lin.bias.detach().double().numpy()
        fw = _layer_bits(w)
        arrays[f"{name}.w"] = np.round(w * 2.0 ** fw).astype(np.int32)
        arrays[f"{name}.b"] = np.round(b * 2.0 ** (fw + in_bits)).astype(np.int64)
        arrays[f"{name}.shift"] = np.array([fw + in_bits], dtype=np.int32)

    put("trunk0", model.trunk[0], IN_SHIFT)
    put("trunk1", model.trunk[2], ACT_BITS)
    for k, hd in enumerate(model.heads):
        put(f"head{k}.0", hd[0], ACT_BITS)
        put(f"head{k}.1", hd[2], ACT_BITS)
    arrays["table"] = logistic_table()
    arrays["offsets"] = np.array(model.context.offsets, dtype=np.int32)
    return arrays


class IntPredictor:
    """Exact integer evaluation of a quantized predictor (numpy float64 on integers)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.layers: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
        for key in arrays:
            if key.endswith(".w") and key.count(".") >= 1:
                name = key[:-2]
                self.layers[name] = (np.ascontiguousarray(arrays[key].astype(np.float64).T),
                                     arrays[f"{name}.b"].astype(np.float64),
                                     int(arrays[f"{name}.shift"][0]))
        self.context = causal.Context(arrays["offsets"] if "offsets" in arrays else causal.SMALL)
        if self.layers["trunk0"][0].shape[0] != self.context.n_inputs(3):
            raise ValueError("trunk input width does not match the context")
        hidden = self.layers["trunk1"][0].shape[1]
        self.pred_err = self.layers["head1.0"][0].shape[0] == hidden + 2 if \
            "head1.0" in self.layers else False
        self.channels = sum(1 for n in self.layers if n.startswith("head") and n.endswith(".0"))
        table = np.asarray(arrays["table"])
        if table.shape != (N_SCALES, MEAN_FRAC, 511) or table.min() < 1 or table.max() > 1 << 24:
            raise ValueError("logistic table has the wrong shape or range")
        self.table = table.astype(np.int64)
        # windows[row, base, j] = table[row, 255 - base + j]: the frequencies of values 0..255
        # for a mean whose integer part is `base`, as a zero-copy strided view.
        flat = np.ascontiguousarray(table.reshape(N_SCALES * MEAN_FRAC, 511), dtype=np.float64)
        self._flat = flat
        s0, s1 = flat.strides
        self.windows = np.lib.stride_tricks.as_strided(
            flat[:, 255:], shape=(flat.shape[0], 256, 256), strides=(s0, -s1, s1),
            writeable=False)
        for name, (w, b, _s) in self.layers.items():
            if np.abs(w).max() >= 2 ** 16 or np.abs(b).max() >= 2 ** 40:
                raise ValueError(f"layer {name} has weights too large for exact evaluation")

    def _hidden(self, name: str, x: np.ndarray) -> np.ndarray:
        w, b, shift = self.layers[name]
        z = x @ w + b
        # relu, back to ACT_BITS fixed point (exact: power-of-two scaling and floor), clip
        return np.minimum(np.floor(np.maximum(z, 0.0) * 2.0 ** (ACT_BITS - shift)), ACT_MAX)

    def trunk(self, inputs: np.ndarray) -> np.ndarray:
        """Shared hidden features (N, hidden), integer-valued float64."""
        h = self._hidden("trunk0", inputs.astype(np.float64))
        return self._hidden("trunk1", h)

    def head(self, k: int, h: np.ndarray, residuals: np.ndarray, delta: np.ndarray | None = None,
             errors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw integer outputs (N, 2) of head k; residuals (N, >=k) value - MED of the channels
        coded before, errors (N, >=k) 8 * value - mean8 of them (models with pred_err).
        ``delta`` optionally adds an integer update to the output layer."""
        return self.output(k, self.head_features(k, h, residuals, errors), delta)

    def head_features(self, k: int, h: np.ndarray, residuals: np.ndarray,
                      errors: np.ndarray | None = None) -> np.ndarray:
        """Inputs of head k's output layer (also what per-image fine-tuning fits on)."""
        parts = [h, residuals[:, :k].astype(np.float64) * 2.0 ** (ACT_BITS - IN_SHIFT)]
        if self.pred_err:  # (value - mean) / 32 at ACT_BITS: exactly 8 * value - mean8
            parts.append(errors[:, :k].astype(np.float64))
        return self._hidden(f"head{k}.0", np.concatenate(parts, axis=1))

    def output(self, k: int, g: np.ndarray, delta: np.ndarray | None = None) -> np.ndarray:
        w, b, shift = self.layers[f"head{k}.1"]
        if delta is not None:  # (in+1, 2) integer update: weights then bias row
            w = w + delta[:-1]
            b = b + delta[-1] * 2.0 ** ACT_BITS
        return (g @ w + b), shift

    @staticmethod
    def params(meds: np.ndarray, out: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean in 1/8 pixel clipped to 0..255*8, scale index 0..N_SCALES-1), both int64."""
        frac_shift = shift - int(math.log2(MEAN_FRAC))
        d8 = np.floor((out[:, 0] + 2.0 ** (frac_shift - 1)) * 2.0 ** -frac_shift)
        idx = np.floor((out[:, 1] + 2.0 ** (shift - 1)) * 2.0 ** -shift)
        mean8 = np.clip(meds.astype(np.int64) * MEAN_FRAC + d8.astype(np.int64), 0,
                        255 * MEAN_FRAC)
        return mean8, np.clip(idx, 0, N_SCALES - 1).astype(np.int64)

    def probs(self, mean8: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Unnormalized probability rows (N, 256) over the values 0..255: integer frequencies
        as float64 (constriction normalizes them; identical inputs on both sides)."""
        return self.windows[idx * MEAN_FRAC + mean8 % MEAN_FRAC, mean8 // MEAN_FRAC]

    def expected_abs_error(self) -> np.ndarray:
        """E|value - mean| per scale index in 1/8 pixel x 1024, integer arithmetic on the
        stored table (mean fraction 0), so every machine gets the same numbers."""
        f = self.table[:, 0, :].astype(np.int64)
        e = np.abs(np.arange(-255, 256, dtype=np.int64)) * MEAN_FRAC * 1024
        return (f * e).sum(axis=1) // f.sum(axis=1)

    def bits(self, mean8: np.ndarray, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Ideal code length in bits of each value (for training reports and decisions)."""
        if not hasattr(self, "_sums"):
            self._sums = self.windows.sum(axis=2)
        row, base = idx * MEAN_FRAC + mean8 % MEAN_FRAC, mean8 // MEAN_FRAC
        f = self._flat[row, 255 - base + values]
        return np.log2(self._sums[row, base]) - np.log2(f)


def describe(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Architecture of a quantized predictor, for model cards."""
    t0 = arrays["trunk0.w"].shape
    return {"inputs": int(t0[1]), "hidden": int(t0[0]),
            "neighbours": int(arrays["offsets"].shape[0]) if "offsets" in arrays else 11,
            "head": int(arrays["head0.0.w"].shape[0]),
            "channels": sum(1 for k in arrays if k.startswith("head") and k.endswith(".0.w"))}
