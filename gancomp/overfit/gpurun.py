"""Fit the overfit benchmark subset in parallel processes within a time budget (GPU recipe).

    python -m gancomp.overfit.gpurun --kodak DIR --out DIR --minutes 5 --device cuda
    python -m gancomp.overfit.gpurun --finish DIR     # here: pack fit states into .gcz
    python -m gancomp.overfit.gpurun --verify DIR     # here: decode every .gcz, compare hashes

Each job (image, quality) first times a short probe fit, then fits with as many iterations as
its share of the budget allows (at most the effort's count). When constriction is installed
the job writes the .gcz and its JSON row (bpp, PSNR of the decoded pixels, seconds, SHA-256 of
the decoded pixels); without it (the GPU machine may lack it) it writes the fitted float state
as safetensors and ``--finish`` codes it on this machine. Either way ``--verify`` decodes the
files here on the CPU and checks the pixels' hash and PSNR against the JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np


def _load(kodak: Path, which: str, name: str) -> np.ndarray:
    from ..benchmarks.overfit import load

    return load(kodak, name, which)


def _job(args: tuple) -> dict:
    import torch

    from ..codecs.overfit import EFFORTS, arch_for, lambda_of
    from . import fit as F

    kodak, out, which, name, q, effort, device, deadline, share = args
    torch.set_num_threads(1)
    img = _load(Path(kodak), which, name)
    lam = lambda_of(q)
    arch = arch_for(img.shape[0] * img.shape[1])
    iters, cands, warm = EFFORTS[effort]
    t0 = time.time()
    probe = F.fit(img, lam, arch, F.Schedule(iters=10), seed=0, device=device)  # warms up
    probe = F.fit(img, lam, arch, F.Schedule(iters=20), seed=0, device=device)
    budget = min(share, deadline - time.time()) * 0.85
    fit_iters = int(max(50, min(iters + cands * warm, budget / max(probe.s_per_iter, 1e-4))))
    scale = fit_iters / (iters + cands * warm)
    sched = F.Schedule(iters=max(40, int(iters * scale)), candidates=cands,
                       warm=int(warm * scale) if cands > 1 else 0)
    r = F.fit(img, lam, arch, sched, seed=0, device=device)
    stem = f"{which}-{name}-q{q:g}"
    row = {"set": which, "image": name, "quality": q, "effort": effort, "device": device,
           "iters": r.iters_done, "fit_s": r.seconds, "s_per_iter": r.s_per_iter,
           "seconds": time.time() - t0}
    try:
        import constriction  # noqa: F401
    except ImportError:
        save_state(Path(out) / f"{stem}.safetensors", row, arch, r.latents, r.params)
        return row
    row.update(_pack(img, q, arch, r.latents, r.params, Path(out) / stem))
    return row


def save_state(path: Path, row: dict, arch, latents: list[np.ndarray],
               params: dict[str, np.ndarray]) -> None:
    """A fitted float state (latents, networks, sizes, the job's row) as safetensors."""
    from safetensors.numpy import save_file

    arrays = {f"lat{g}": np.ascontiguousarray(y, np.float32) for g, y in enumerate(latents)}
    arrays.update({k: np.ascontiguousarray(v, np.float32) for k, v in params.items()})
    save_file(arrays, str(path), metadata={"row": json.dumps(row), "syn": json.dumps(list(arch.syn)),
                                           "arm": str(arch.arm), "grids": str(arch.grids)})


def load_state(path: Path):
    """(row, arch, latents, params) saved by :func:`save_state` (float32 values as float64)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from .model import Arch

    with safe_open(str(path), "np") as fh:
        meta = fh.metadata()
    arrays = load_file(str(path))
    arch = Arch(int(meta["grids"]), tuple(json.loads(meta["syn"])), int(meta["arm"]))
    lat = [arrays[f"lat{g}"].astype(np.float64) for g in range(arch.grids)]
    params = {k: v.astype(np.float64) for k, v in arrays.items() if not k.startswith("lat")}
    return json.loads(meta["row"]), arch, lat, params


def _pack(img, q, arch, latents, params, stem: Path) -> dict:
    """Code a fitted state into a .gcz next to ``stem``; bpp, PSNR and the pixels' hash."""
    from .. import container as ct
    from ..codecs.overfit import DEFAULT_TILE, lambda_of
    from ..metrics import psnr
    from .pack import pack

    h, w = img.shape[:2]
    p = pack(arch, latents, params, lambda_of(q), img)
    data = ct.pack(ct.Container(codec_id=7, codec_version=1, width=w, height=h, channels=3,
                                params={"q": int(round(q * 100)), "e": 9, "t": DEFAULT_TILE, "s": 0},
                                streams=p.streams))
    stem.with_suffix(".gcz").write_bytes(data)
    return {"bpp": len(data) * 8 / (h * w), "psnr": float(psnr(img, p.pixels)),
            "decoded_sha256": hashlib.sha256(p.pixels.tobytes()).hexdigest()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gancomp.overfit.gpurun", description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", default="../shared/data/kodak")
    ap.add_argument("--out", default="runs/overfit-gpu")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--effort", type=int, default=9)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--sets", default="crops,full")
    ap.add_argument("--qualities", default="15,40,65,90")
    ap.add_argument("--finish", metavar="DIR")
    ap.add_argument("--verify", metavar="DIR")
    a = ap.parse_args(argv)
    if a.finish:
        return _finish(Path(a.finish), Path(a.kodak))
    if a.verify:
        return _verify(Path(a.verify), Path(a.kodak))
    from ..benchmarks.overfit import SETS

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    deadline = start + a.minutes * 60
    jobs = [(a.kodak, str(out), which, n, float(q), a.effort, a.device, deadline, 0.0)
            for which in a.sets.split(",") for n in SETS[which] for q in a.qualities.split(",")]
    # every job gets an equal share of worker time; crops (listed first) start first
    share = a.minutes * 60 * a.workers / max(1, len(jobs))
    jobs = [j[:-1] + (share,) for j in jobs]
    rows = []
    with mp.get_context("spawn").Pool(a.workers) as pool:
        for row in pool.imap_unordered(_job, jobs):
            rows.append(row)
            print(json.dumps(row), flush=True)
            (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} jobs in {time.time() - start:.0f} s", file=sys.stderr)
    return 0


def _finish(folder: Path, kodak: Path) -> int:
    rows = []
    for f in sorted(folder.glob("*.safetensors")):
        row, arch, lat, params = load_state(f)
        img = _load(kodak, row["set"], row["image"])
        row.update(_pack(img, row["quality"], arch, lat, params, f.with_suffix("")))
        rows.append(row)
        print(json.dumps(row), flush=True)
    old = folder / "results.json"
    if rows:
        (folder / "results_finished.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if rows or old.exists() else 1


def _verify(folder: Path, kodak: Path) -> int:
    from .. import api
    from ..metrics import psnr

    rows = []
    for name in ("results_finished.json", "results.json"):
        if (folder / name).exists():
            rows += [r for r in json.loads((folder / name).read_text()) if "decoded_sha256" in r]
    bad = 0
    for r in rows:
        data = (folder / f"{r['set']}-{r['image']}-q{r['quality']:g}.gcz").read_bytes()
        rec = api.decode(data).pixels
        ok = hashlib.sha256(rec.tobytes()).hexdigest() == r["decoded_sha256"]
        img = _load(kodak, r["set"], r["image"])
        bad += not ok
        print(f"{r['set']} {r['image']} q{r['quality']:g}: {'identical' if ok else 'DIFFERENT'} "
              f"pixels, {psnr(img, rec):.3f} dB (recorded {r['psnr']:.3f})")
    print(f"{len(rows) - bad}/{len(rows)} files decode here to the recorded pixels")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
