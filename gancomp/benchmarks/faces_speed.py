"""Encode speed of gan-inversion per face: one core alone, and the same core shared with
another busy process.

    python -m gancomp.benchmarks.faces_speed /work/shared/data/faces --count 20

The encoder process is pinned to one CPU (``--cpu``); each face is encoded through the
library (model loaded, one torch thread). Reported per face: median wall seconds and median
CPU seconds of this process. ``--burn`` starts a busy-loop process pinned to the same CPU
for the second measurement, so the encoder gets about half of the core: the wall time then
shows how much worse than 2x of the alone time it gets (threads fighting would show here).
On a machine already loaded by others, the CPU seconds are the closest to an idle core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def measure(faces: np.ndarray, **opts) -> tuple[float, float]:
    """(median wall s, median CPU s) per face of api.encode_array on gan-inversion."""
    from .. import api

    api.encode_array(faces[0], "gan-inversion", **opts)  # load the model, warm up
    wall, cpu = [], []
    for f in faces:
        t, c = time.perf_counter(), time.process_time()
        api.encode_array(f, "gan-inversion", **opts)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu))


def main(argv: list[str] | None = None) -> None:
    import torch

    from ..train.ganinv import load_u8, split3

    ap = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.faces_speed",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--count", type=int, default=20, help="test faces encoded one by one")
    ap.add_argument("--model", default=None)
    ap.add_argument("--cpu", type=int, default=0, help="CPU to pin to")
    ap.add_argument("--burn", action="store_true", help="also measure with a busy process "
                    "on the same CPU")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    os.sched_setaffinity(0, {args.cpu})
    _, _, test = split3(args.data)
    faces = load_u8(test[: args.count])
    opts = {"model": args.model} if args.model else {}
    rows = []
    load = "%.1f %.1f %.1f" % os.getloadavg()
    w, c = measure(faces, **opts)
    rows.append(("pinned to one core (others' load as shown)", w, c, load))
    if args.burn:
        burner = subprocess.Popen([sys.executable, "-c",
                                   f"import os; os.sched_setaffinity(0, {{{args.cpu}}})\n"
                                   "while True: pass"])
        try:
            time.sleep(1.0)
            load = "%.1f %.1f %.1f" % os.getloadavg()
            w2, c2 = measure(faces, **opts)
        finally:
            burner.kill()
            burner.wait()
        rows.append(("same core shared with a busy process of ours", w2, c2, load))
    print(f"| gan-inversion encode, {len(faces)} test faces, model "
          f"{opts.get('model', 'default')} | wall s/face (median) | CPU s/face (median) | "
          f"load average |\n|---|---|---|---|")
    for name, w, c, ld in rows:
        print(f"| {name} | {w:.3f} | {c:.3f} | {ld} |")
    if args.burn:
        print(f"shared / alone wall ratio: {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
