"""Export a trained hyperprior checkpoint as a shipped model: float transforms (fp32 or
fp16), the hyper-synthesis as an integer network, and the integer CDF tables, saved through
:mod:`gancomp.weights` with a model card.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..nn.intnet import quantize_conv

SCALES = np.exp(np.linspace(math.log(0.11), math.log(64.0), 64))
ACT_FRAC = 8          # fixed-point fraction bits of the integer hyper-synthesis activations
PREC = 1 << 16        # total of each frequency row
TAIL_SIGMAS = 8.0     # Gaussian rows cover +-8 sigma; the rest goes to the escape bin
Z_RADIUS = 64         # factorized-prior rows cover -64..64


def _freq_row(p: np.ndarray, tail: float) -> np.ndarray:
    """Integer frequencies for probabilities ``p`` plus an escape bin holding ``tail``:
    every symbol at least 1, total about PREC."""
    n = p.size + 1
    f = np.maximum(1, np.floor(np.append(p, tail) * (PREC - n))).astype(np.int64)
    return f


def gaussian_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(freqs (S, K), offsets (S,), log-scale thresholds (S-1,) at 2^ACT_FRAC) for SCALES."""
    import torch

    def ndtr(v: np.ndarray) -> np.ndarray:
        return torch.special.ndtr(torch.from_numpy(v)).numpy()

    widths = np.ceil(SCALES * TAIL_SIGMAS).astype(np.int64) + 1
    K = 2 * int(widths.max()) + 2
    freqs = np.zeros((SCALES.size, K), dtype=np.int64)
    for i, (s, w) in enumerate(zip(SCALES, widths)):
        v = np.arange(-w, w + 1, dtype=np.float64)
        p = ndtr((v + 0.5) / s) - ndtr((v - 0.5) / s)
        row = _freq_row(p, max(0.0, 1.0 - p.sum()))
        freqs[i, :row.size - 1] = row[:-1]
        freqs[i, -1] = row[-1]
    logs = np.log(SCALES)
    bounds = np.ceil((logs[:-1] + logs[1:]) / 2 * 2 ** ACT_FRAC).astype(np.int64)
    return freqs, -widths, bounds


def prior_tables(model) -> tuple[np.ndarray, np.ndarray]:
    """(freqs (C, 2R+2), offsets (C,)) of the factorized prior on -R..R plus escape."""
    pmf = model.prior.pmf(Z_RADIUS).double().numpy()
    rows = [_freq_row(p[:-1], float(p[-1])) for p in pmf]
    return np.stack(rows), np.full(len(rows), -Z_RADIUS, dtype=np.int64)


def integer_hs(model) -> list:
    """The float hyper-synthesis as integer layers (input: integer z, output at 2^ACT_FRAC)."""
    from torch import nn

    convs = [m for m in model.h_s if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    layers = []
    in_frac = 0
    for i, m in enumerate(convs):
        last = i == len(convs) - 1
        tr = isinstance(m, nn.ConvTranspose2d)
        layers.append(quantize_conv(
            m.weight.detach().double().numpy(), m.bias.detach().double().numpy(), tr,
            m.stride[0], m.padding[0], m.output_padding[0] if tr else 0, in_frac, ACT_FRAC,
            relu=not last))
        in_frac = ACT_FRAC
    return layers


def export_arrays(model, half: bool = False) -> dict[str, np.ndarray]:
    """All arrays of a shipped model."""
    arrays: dict[str, np.ndarray] = {}
    for k, v in model.state_dict().items():
        if k.startswith(("g_a.", "g_s.", "h_a.")) or k in ("log_gain", "log_inv_gain", "log_lambdas"):
            a = v.detach().cpu().numpy()
            arrays[k] = a.astype(np.float16) if half and a.ndim == 4 else a.astype(np.float32)
    for i, layer in enumerate(integer_hs(model)):
        arrays[f"hs_int.{i}.weight"] = layer.weight.astype(np.int32)
        arrays[f"hs_int.{i}.bias"] = layer.bias.astype(np.int64)
        arrays[f"hs_int.{i}.meta"] = layer.meta()
    yf, yo, yb = gaussian_tables()
    arrays["y_freqs"], arrays["y_offsets"], arrays["scale_bounds"] = yf.astype(np.int32), yo, yb
    zf, zo = prior_tables(model)
    arrays["z_freqs"], arrays["z_offsets"] = zf.astype(np.int32), zo
    return arrays


def export(checkpoint: Path, model_id: str, folder: Path, results: Any = None,
           half: bool = False, default: bool = True) -> Path:
    """Write models/<model_id>.safetensors + .json from a training checkpoint."""
    from safetensors import safe_open

    from .. import weights
    from .loop import build_model, load_checkpoint

    with safe_open(str(checkpoint), framework="pt") as f:
        meta = f.metadata()
    cfg = json.loads(meta["config"])
    model = build_model(cfg)
    step = load_checkpoint(checkpoint, model)
    model.eval()
    card = {
        "id": model_id, "codec": "hyperprior", "default": default,
        "architecture": (f"mean-scale hyperprior (Ballé 2018 / Minnen 2018): g_a 4x conv5 s2 + GDN "
                         f"(N={cfg['N']}, M={cfg['M']}), g_s IGDN, h_a/h_s N_h={cfg['Nh']}, "
                         f"factorized prior on z, Gaussian conditional with integer h_s "
                         f"(fixed point 2^{ACT_FRAC}), {len(SCALES)} scales; gain units over "
                         f"{len(cfg['lambdas'])} lambdas {cfg['lambdas']}"),
        "config": cfg,
        "data": f"{cfg['data']} ({cfg['crops_per_image']} random {cfg['crop']}px crops per image, "
                f"half from 0.5-1x downscaled copies); never Kodak",
        "steps": step, "batch": cfg["batch"],
        "results": results,
    }
    return weights.save(export_arrays(model, half=half), card, Path(folder), model_id)
