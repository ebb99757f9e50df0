"""Tune the encode-time optimizer of v2 face models on the tuning slice (face ids 7251..7500:
never trained on by v2 runs from scratch, never the 500 test faces).

    python -m gancomp.benchmarks.faces_tune /work/shared/data/faces --model ganinv-faces64-v2

For each setting (steps, lr, lr_end, patience) every face is inverted (in batches, each face
stopping on its own), written as a real .gcz file and decoded; the table gives mean SSIM,
PSNR and bpp of those files, mean optimizer steps used, and CPU seconds per face on one
thread (process time, so other load on the machine does not count).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from .. import api, metrics


def run(faces: np.ndarray, model_id: str | None, level: int, setting: dict,
        batch: int = 25) -> dict:
    """Mean SSIM/PSNR/bpp/steps and CPU s per face of one encoder setting."""
    from .. import inversion
    from ..codecs import get_codec
    from ..codecs.ganinv import pack_v2
    from .faces import _Precomputed

    m = inversion.load_model(model_id)
    codec = get_codec("gan-inversion")
    ss, ps, bpp, steps = [], [], [], []
    t = time.process_time()
    for i in range(0, len(faces), batch):
        res = inversion.invert_v2(m, faces[i:i + batch], level=level, **setting)
        steps.append(res.steps)
        for f, sym in zip(faces[i:i + batch], res.symbols):
            data, _ = api._encode_once(_Precomputed(codec, pack_v2(m, sym, level, False)), f,
                                       None, None, None, 8, {})
            rec = api.decode_array(data)
            ss.append(metrics.ssim(f, rec))
            ps.append(metrics.psnr(f, rec))
            bpp.append(len(data) * 8 / 4096)
    cpu = (time.process_time() - t) / len(faces)
    return {"ssim": float(np.mean(ss)), "psnr": float(np.mean(ps)), "bpp": float(np.mean(bpp)),
            "max_steps_batch": float(np.mean(steps)), "cpu_s": cpu}


def main(argv: list[str] | None = None) -> None:
    import torch

    from ..train.ganinv import load_u8, split3

    ap = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.faces_tune",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", default=None)
    ap.add_argument("--count", type=int, default=50, help="tuning faces used")
    ap.add_argument("--level", type=int, default=2)
    ap.add_argument("--steps", default="0,20,40,80")
    ap.add_argument("--lr", default="0.1,0.3,0.6")
    ap.add_argument("--lr-end", default="0.05")
    ap.add_argument("--patience", default="8")
    ap.add_argument("--rate-weight", default="1")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    _, tune, _ = split3(args.data)
    faces = load_u8(tune[: args.count])
    grid = itertools.product(*(map(float, v.split(",")) for v in
                               (args.steps, args.lr, args.lr_end, args.patience,
                                args.rate_weight)))
    print(f"level {args.level}, {len(faces)} tuning faces")
    print("| steps | lr | lr_end | patience | rate weight | SSIM | PSNR (dB) | bpp | "
          "steps run (batch max) | CPU s/face |\n|---|---|---|---|---|---|---|---|---|---|",
          flush=True)
    seen = set()
    for st, lr, le, pa, rw in grid:
        key = (int(st), lr if st else 0, le if st else 0, int(pa) if st else 0, rw if st else 0)
        if key in seen:
            continue
        seen.add(key)
        r = run(faces, args.model, args.level,
                {"steps": int(st), "lr": lr, "lr_end": le, "patience": int(pa),
                 "rate_weight": rw})
        print(f"| {key[0]} | {key[1]:g} | {key[2]:g} | {key[3]} | {key[4]:g} | {r['ssim']:.4f} | "
              f"{r['psnr']:.2f} | {r['bpp']:.4f} | {r['max_steps_batch']:.0f} | "
              f"{r['cpu_s']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
