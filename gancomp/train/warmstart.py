"""Start training from a shipped hyperprior model (its safetensors, not a checkpoint): the
float transforms load as they are, the float hyper-synthesis is recovered from its integer
layers, the factorized prior is refitted to the shipped z tables, and gain vectors for new
lambdas are extrapolated along the old ones (gain ~ sqrt(lambda)).
"""

from __future__ import annotations

import numpy as np


def _level_rows(table: np.ndarray, old: np.ndarray, new: np.ndarray, sign: float) -> np.ndarray:
    """Rows of a (levels, M) log-gain table for new log-lambdas: old rows where they match,
    log-linear interpolation inside, +-0.5 * d log(lambda) beyond the ends."""
    rows = []
    for v in new:
        j = int(np.argmin(np.abs(old - v)))
        if abs(old[j] - v) < 1e-6:
            rows.append(table[j])
        elif v < old[0] or v > old[-1]:
            e = 0 if v < old[0] else -1
            rows.append(table[e] + sign * 0.5 * (v - old[e]))
        else:
            i = int(np.searchsorted(old, v)) - 1
            f = (v - old[i]) / (old[i + 1] - old[i])
            rows.append(table[i] * (1 - f) + table[i + 1] * f)
    return np.stack(rows)


def float_hs_from_integer(arrays: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight in torch layout, bias) of each h_s conv, recovered from the shipped integer
    layers (exact up to the 2^-w_frac weight rounding of the export)."""
    out = []
    n = len([k for k in arrays if k.startswith("hs_int.") and k.endswith(".meta")])
    for i in range(n):
        w = arrays[f"hs_int.{i}.weight"].astype(np.float64)
        b = arrays[f"hs_int.{i}.bias"].astype(np.float64)
        up, _, _, _, in_frac, w_frac, _, _ = (int(v) for v in arrays[f"hs_int.{i}.meta"])
        if up > 1:  # conv layout (O, I, k, k), flipped -> ConvTranspose2d layout (I, O, k, k)
            w = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        out.append((w / 2.0 ** w_frac, b / 2.0 ** (in_frac + w_frac)))
    return out


def fit_prior(prior, freqs: np.ndarray, offsets: np.ndarray, steps: int = 400) -> float:
    """Fit a FactorizedPrior to integer z tables (cross-entropy on the tables' support);
    returns the final cross-entropy in bits per symbol."""
    import torch

    p = freqs[:, :-1].astype(np.float64)
    p = torch.from_numpy(p / p.sum(1, keepdims=True)).float()           # (C, K)
    v = torch.arange(p.shape[1], dtype=torch.float32) + float(offsets[0])
    z = v.repeat(p.shape[0], 1)[None, :, None, :]                          # (1, C, 1, K)
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    ce = torch.tensor(0.0)
    for _ in range(steps):
        lik = prior.likelihood(z)[0, :, 0].clamp_min(1e-12)
        ce = -(p * torch.log2(lik)).sum(1).mean()
        opt.zero_grad()
        ce.backward()
        opt.step()
    return float(ce.detach())


def load_shipped(model, model_id: str) -> dict[str, float]:
    """Initialise ``model`` (a HyperpriorModel of the same N, M, Nh) from shipped weights."""
    import torch
    from torch import nn

    from ..weights import find, load

    card = find(model_id)
    arrays, _ = load(model_id, card.sha256)
    state = model.state_dict()
    new = {}
    for k, v in arrays.items():
        if k.startswith(("g_a.", "g_s.", "h_a.")):
            if k not in state or tuple(state[k].shape) != v.shape:
                raise ValueError(f"{model_id}: {k} does not fit this model")
            new[k] = torch.from_numpy(np.asarray(v, np.float32))
    old = arrays["log_lambdas"].astype(np.float64)
    cur = model.log_lambdas.double().numpy()
    new["log_gain"] = torch.from_numpy(_level_rows(arrays["log_gain"], old, cur, 1.0)).float()
    new["log_inv_gain"] = torch.from_numpy(_level_rows(arrays["log_inv_gain"], old, cur, -1.0)).float()
    model.load_state_dict(new, strict=False)
    convs = [m for m in model.h_s if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        for m, (w, b) in zip(convs, float_hs_from_integer(arrays)):
            m.weight.copy_(torch.from_numpy(w.copy()).float())
            m.bias.copy_(torch.from_numpy(b).float())
    ce = fit_prior(model.prior, arrays["z_freqs"], arrays["z_offsets"])
    return {"prior_fit_bits": ce}
