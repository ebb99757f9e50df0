"""Rate-distortion plots (matplotlib, Agg backend): PSNR and MS-SSIM (dB) against bpp."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .bdrate import msssim_db
from .compare import Curve
from .errors import InputError


def plot(curves: dict[str, Curve], path: str | Path, title: str = "",
         metrics: Sequence[str] = ("psnr", "ms_ssim"), xlim: tuple[float, float] | None = None) -> None:
    """Write a PNG with one panel per metric; published curves are dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .anchors import label

    p = Path(path)
    if not p.parent.exists():
        raise InputError(f"{path}: folder does not exist")
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.2 * len(metrics), 4.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        drawn = 0
        for i, (name, c) in enumerate(curves.items()):
            y = c.psnr if metric == "psnr" else msssim_db(c.ms_ssim)
            ok = np.isfinite(y) & np.isfinite(c.bpp)
            if xlim:
                ok &= (c.bpp >= xlim[0] * 0.8) & (c.bpp <= xlim[1] * 1.25)
            if not ok.any():
                continue
            style = dict(ls="--", marker="x", ms=4, lw=1.2) if c.published else \
                dict(ls="-", marker="o", ms=4, lw=1.6)
            ax.plot(c.bpp[ok], y[ok], label=label(name) if c.published else name,
                    color=f"C{i % 10}", **style)
            drawn += 1
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel("PSNR RGB (dB)" if metric == "psnr" else "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)")
        ax.grid(True, alpha=0.3)
        if xlim:
            ax.set_xlim(*xlim)
        if drawn:
            ax.legend(fontsize=8, loc="lower right")
        else:
            ax.text(0.5, 0.5, "no data (MS-SSIM needs images > 160 px)" if metric != "psnr"
                    else "no data", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = p.with_name(p.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(p)


def finite_range(curves: dict[str, Curve]) -> tuple[float, float]:
    """The bpp range the measured (non-published) curves span."""
    b = [x for c in curves.values() if not c.published for x in c.bpp if math.isfinite(x)]
    return (min(b), max(b)) if b else (0.0, 1.0)
