"""Published and reference RD curves ("anchors") read from CSV files, for plots and BD-rates.

Understood layouts (columns are found by name, extra columns are ignored):

- CompressAI results (``compressai_kodak_rd.csv``): method, ..., bpp, psnr_rgb, ms_ssim
- local classical sweeps (``kodak_classical_local.csv``): method, q, bpp, psnr, ms_ssim
- GAN codecs (``gan_codecs_rd.csv``): method, dataset, bpp, psnr, ms_ssim — rows of other
  datasets than ``dataset`` (default kodak) are dropped.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .compare import Curve
from .errors import InputError

# Shown when --anchor-methods is not given, in this order, if the file has them.
DEFAULT_METHODS = ("compressai-bmshj2018-hyperprior_mse_cuda", "compressai-mbt2018-mean_mse_cuda")
# Short names users may type.
SHORT = {"bmshj2018-hyperprior": "compressai-bmshj2018-hyperprior_mse_cuda",
         "mbt2018-mean": "compressai-mbt2018-mean_mse_cuda",
         "mbt2018": "compressai-mbt2018_mse_cuda",
         "bmshj2018-factorized": "compressai-bmshj2018-factorized_mse_cuda",
         "cheng2020-anchor": "compressai-cheng2020-anchor_mse_cuda",
         "cheng2020-attn": "compressai-cheng2020-attn_mse_cuda"}
MAX_DEFAULT = 8


def _float(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_csv(path: str | Path, dataset: str = "kodak") -> dict[str, Curve]:
    """All curves in an anchors CSV, by method name (points sorted by rate)."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read anchors CSV ({exc})") from None
    psnr_col = "psnr_rgb" if "psnr_rgb" in cols else "psnr"
    if not {"method", "bpp", psnr_col} <= cols:
        raise InputError(f"{path}: anchors CSV needs columns method, bpp and psnr (or psnr_rgb)")
    pts: dict[str, list[tuple[float, float, float]]] = {}
    for r in rows:
        if "dataset" in cols and r.get("dataset") and r["dataset"] != dataset:
            continue
        b, q = _float(r.get("bpp")), _float(r.get(psnr_col))
        if math.isfinite(b) and b > 0 and math.isfinite(q):
            pts.setdefault(r["method"], []).append((b, q, _float(r.get("ms_ssim"))))
    if not pts:
        raise InputError(f"{path}: no usable RD points" + (f" for dataset {dataset}" if "dataset" in cols else ""))
    out = {}
    for m, v in pts.items():
        v.sort()
        a = np.array(v)
        out[m] = Curve(m, a[:, 0], a[:, 1], a[:, 2], published=True)
    return out


def select(curves: dict[str, Curve], methods: Sequence[str] | None) -> dict[str, Curve]:
    """Pick curves by name (exact, a short name like ``bmshj2018-hyperprior``, or a unique
    substring); without names, the default published models or every method of a small file."""
    if not methods:
        chosen = [m for m in DEFAULT_METHODS if m in curves]
        if not chosen:
            if len(curves) > MAX_DEFAULT:
                raise InputError(f"anchors file has {len(curves)} methods; pick some with "
                                 f"--anchor-methods (e.g. {', '.join(list(curves)[:3])})")
            chosen = list(curves)
        return {m: curves[m] for m in chosen}
    out: dict[str, Curve] = {}
    for want in methods:
        want = want.strip()
        if want in curves:
            out[want] = curves[want]
            continue
        if SHORT.get(want) in curves:
            out[SHORT[want]] = curves[SHORT[want]]
            continue
        hits = [m for m in curves if want in m]
        if len(hits) != 1:
            what = "no method" if not hits else f"{len(hits)} methods ({', '.join(hits[:4])}…)"
            raise InputError(f"anchor {want!r} matches {what}; available: {', '.join(sorted(curves))}")
        out[hits[0]] = curves[hits[0]]
    return out


def load(path: str | Path, methods: Sequence[str] | None = None, dataset: str = "kodak") -> dict[str, Curve]:
    """Read an anchors CSV and select curves (see :func:`select`)."""
    return select(read_csv(path, dataset), methods)


def label(name: str) -> str:
    """A short legend label for a published curve."""
    return name.replace("compressai-", "").replace("_mse_cuda", " (CompressAI)")
