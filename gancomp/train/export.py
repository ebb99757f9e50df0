"""Export a trained hyperprior checkpoint as a shipped model: float transforms (fp32 or
fp16), the hyper-synthesis as an integer network, the integer CDF tables and the integer
per-(rate level, channel) log-scale offsets (learned in training, then refitted on training
crops by exact code length), saved through :mod:`gancomp.weights` with a model card.
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


def scale_offsets(model) -> np.ndarray:
    """The learned log-scale offsets (levels, M) as integers at 2^ACT_FRAC."""
    return np.round(model.log_scale_offset.detach().cpu().double().numpy() * 2 ** ACT_FRAC).astype(np.int64)


def _varint_bits(v: np.ndarray) -> np.ndarray:
    u = np.where(v >= 0, 2 * v, -2 * v - 1)
    return 8 * np.maximum(1, np.ceil(np.log2(u + 1) / 7)).astype(np.float64)


def fit_scale_offsets(model, arrays: dict[str, np.ndarray], crops, coarse: int = 32,
                      fine: int = 8, span: int = 768) -> tuple[np.ndarray, dict[str, Any]]:
    """Refit ``arrays['scale_offsets']`` per (level, channel) to minimise the exact code length
    of the y symbols of ``crops`` (B, 3, H, W floats in [0, 1], training data, never Kodak)
    at each trained level. Returns the offsets and a summary (y bits per pixel before/after)."""
    import torch

    from ..nn.intnet import IntLayer, run

    hs = [IntLayer.from_arrays(arrays[f"hs_int.{i}.weight"], arrays[f"hs_int.{i}.bias"],
                               arrays[f"hs_int.{i}.meta"])
          for i in range(len([k for k in arrays if k.startswith("hs_int.") and k.endswith(".meta")]))]
    freqs, offs, bounds = arrays["y_freqs"], arrays["y_offsets"], arrays["scale_bounds"]
    f64 = freqs.astype(np.float64)
    K = freqs.shape[1]
    zero_col = freqs <= 0
    zero_col[:, -1] = False
    # bits of each (row, column); zero columns and out-of-row values cost the escape bin
    cost_table = -np.log2(np.maximum(f64, 1) / f64.sum(1, keepdims=True))
    cost_table[zero_col] = cost_table[np.nonzero(zero_col)[0], K - 1]
    start = arrays["scale_offsets"].astype(np.int64)
    best = start.copy()
    M = model.M
    n_pix = crops.shape[0] * crops.shape[2] * crops.shape[3]
    summary: dict[str, Any] = {"crops": int(crops.shape[0]), "crop": int(crops.shape[2]),
                               "y_bpp_learned": [], "y_bpp_fitted": []}
    model = model.eval().cpu()
    with torch.no_grad():   # the analysis does not depend on the level: once per crop
        y_raw = [model.g_a(x[None].float()) for x in crops]
    for lev in range(model.levels):
        t = torch.tensor([float(lev)])
        syms, logs = [], []
        with torch.no_grad():
            g, _ = model.gains(t)
            for y0 in y_raw:
                y = y0 * g
                z = torch.round(model.h_a(y))[0].double().numpy()
                out = run(hs, z)
                mean = out[:M].astype(np.int64)
                syms.append(np.rint(y[0].double().numpy() - mean / 256.0).astype(np.int64).reshape(M, -1))
                logs.append(out[M:].astype(np.int64).reshape(M, -1))
        sym, ls = np.concatenate(syms, 1), np.concatenate(logs, 1)
        extra = _varint_bits(sym)   # an escaped value also costs its varint

        def bits(delta: np.ndarray) -> np.ndarray:  # (M,) offsets -> (M,) total bits
            idx = np.searchsorted(bounds, ls + delta[:, None], side="right")
            col = sym - offs[idx]
            out = (col < 0) | (col >= K - 1)
            col = np.where(out, K - 1, col)
            esc = out | zero_col[idx, col]
            return (cost_table[idx, col] + esc * extra).sum(1)

        base = bits(start[lev])
        cost, choice = base.copy(), start[lev].copy()
        for step, centre in ((coarse, None), (fine, "best")):
            c0 = choice.copy() if centre else start[lev]
            rng = range(-span, span + 1, step) if centre is None else range(-coarse, coarse + 1, step)
            for d in rng:
                cand = c0 + d
                b = bits(cand)
                better = b < cost
                cost[better], choice[better] = b[better], cand[better]
        best[lev] = choice
        summary["y_bpp_learned"].append(round(float(base.sum()) / n_pix, 4))
        summary["y_bpp_fitted"].append(round(float(cost.sum()) / n_pix, 4))
    return best, summary


def export_arrays(model, half: bool = False) -> dict[str, np.ndarray]:
    """All arrays of a shipped model."""
    arrays: dict[str, np.ndarray] = {}
    for k, v in model.state_dict().items():
        if k.startswith(("g_a.", "g_s.", "h_a.")) or k in ("log_gain", "log_inv_gain", "log_lambdas"):
            a = v.detach().cpu().numpy()
            arrays[k] = a.astype(np.float16) if half and a.ndim == 4 else a.astype(np.float32)
    for i, layer in enumerate(integer_hs(model)):
        w = np.ascontiguousarray(layer.weight)   # transposed layers come as flipped views
        arrays[f"hs_int.{i}.weight"] = w.astype(np.int16 if np.abs(w).max() < 2 ** 15 else np.int32)
        arrays[f"hs_int.{i}.bias"] = layer.bias.astype(np.int64)
        arrays[f"hs_int.{i}.meta"] = layer.meta()
    yf, yo, yb = gaussian_tables()
    arrays["y_freqs"], arrays["y_offsets"], arrays["scale_bounds"] = yf.astype(np.int32), yo, yb
    zf, zo = prior_tables(model)
    arrays["z_freqs"], arrays["z_offsets"] = zf.astype(np.int32), zo
    arrays["scale_offsets"] = scale_offsets(model)
    return arrays


def fit_crops(cfg: dict[str, Any], count: int = 24, seed: int = 12345):
    """Fixed random training crops (held-back photos excluded) for fitting the offsets."""
    import torch

    from .data import CropSampler, load_images

    sampler = CropSampler(load_images(cfg["data"], cfg["crop"], False, seed), cfg["crop"], "cpu", seed)
    return torch.cat([sampler.sample(min(16, count - i)) for i in range(0, count, 16)])


def loss_summary(log_path: Path) -> dict[str, Any] | None:
    """First and last logged rows of a loss.csv (averages over ~5 % of the rows at each end)."""
    import csv

    if not Path(log_path).is_file():
        return None
    rows = list(csv.DictReader(open(log_path)))
    if not rows:
        return None
    k = max(1, len(rows) // 20)

    def avg(part):
        return {c: round(float(np.mean([float(r[c]) for r in part])), 4) for c in ("loss", "bpp", "psnr")}

    return {"rows": len(rows), "first_step": int(rows[0]["step"]), "last_step": int(rows[-1]["step"]),
            "seconds": float(rows[-1]["seconds"]), "start": avg(rows[:k]), "end": avg(rows[-k:])}


def export(checkpoint: Path, model_id: str, folder: Path, results: Any = None,
           half: bool = False, default: bool = True, fit: bool = True,
           fit_count: int = 24) -> Path:
    """Write models/<model_id>.safetensors + .json from a training checkpoint (with the rate
    offsets refitted on ``fit_count`` training crops unless ``fit`` is False)."""
    from safetensors import safe_open

    from .. import weights
    from .loop import build_model, load_checkpoint

    with safe_open(str(checkpoint), framework="pt") as f:
        meta = f.metadata()
    cfg = json.loads(meta["config"])
    model = build_model(cfg)
    step = load_checkpoint(checkpoint, model)
    model.eval()
    arrays = export_arrays(model, half=half or bool(cfg.get("export_half", False)))
    fit_info = None
    if fit:
        arrays["scale_offsets"], fit_info = fit_scale_offsets(model, arrays, fit_crops(cfg, fit_count))
    card = {
        "id": model_id, "codec": "hyperprior", "default": default,
        "architecture": (f"mean-scale hyperprior (Ballé 2018 / Minnen 2018): g_a 4x conv5 s2 + GDN "
                         f"(N={cfg['N']}, M={cfg['M']}), g_s IGDN, h_a/h_s N_h={cfg['Nh']}, "
                         f"factorized prior on z, Gaussian conditional with integer h_s "
                         f"(fixed point 2^{ACT_FRAC}), {len(SCALES)} scales, integer log-scale offset "
                         f"per (rate level, channel); gain units over "
                         f"{len(cfg['lambdas'])} lambdas {cfg['lambdas']}"),
        "config": cfg,
        "data": f"{cfg['data']} (training split, held-back photos excluded; fresh random "
                f"{cfg['crop']}px crops every step, flips and turns"
                f"{', plus one 0.5-1x downscaled copy per photo' if cfg.get('downscaled_copy', True) else ''}"
                f"); never Kodak",
        "init": cfg.get("init"),
        "steps": step, "batch": cfg["batch"],
        "loss_log": loss_summary(Path(checkpoint).parent / "loss.csv"),
        "rate_offsets_fit": fit_info,
        "results": results,
    }
    return weights.save(arrays, card, Path(folder), model_id)
