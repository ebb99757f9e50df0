"""Fit the overfit benchmark subset in parallel processes within a time budget (GPU recipe).

    python -m gancomp.overfit.gpurun --kodak DIR --out DIR --minutes 5 --device cuda
    python -m gancomp.overfit.gpurun --finish DIR     # here: pack fit states into .gcz
    python -m gancomp.overfit.gpurun --verify DIR     # here: decode every .gcz, compare hashes

Each job (image, quality) first times a short probe fit, then fits with as many iterations as
its share of the budget allows (at most the effort's count). Like the codec, every fit starts
from the installed pre-fitted networks (``overfit-init-*``, :mod:`gancomp.overfit.prefit`) and
the file (codec version 2) stores the weights as differences from them; ``--no-prefit`` gives
the random starts and self-contained files of version 1. When constriction is installed
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


def _start(arch, prefit: bool):
    """(card, init) of the installed starting networks for ``arch`` (as the codec picks
    them), or (None, None) for a random start."""
    from .prefit import for_arch, starting_point

    start = starting_point() if prefit else None
    init = for_arch(*start, arch) if start else None
    return (start[1], init) if init is not None else (None, None)


def _job(args: tuple) -> dict:
    import torch

    from ..codecs.overfit import DEFAULT_TILE, EFFORTS, arch_for, lambda_of
    from . import fit as F

    kodak, out, which, name, q, effort, device, deadline, prefit, max_iters, share = args
    torch.set_num_threads(1)
    img = _load(Path(kodak), which, name)
    if max(img.shape[:2]) > DEFAULT_TILE:
        raise ValueError(f"{name}: larger than one tile ({DEFAULT_TILE}); use the codec")
    lam = lambda_of(q)
    arch = arch_for(img.shape[0] * img.shape[1])
    card, init = _start(arch, prefit)
    iters, cands, warm = EFFORTS[effort]
    t0 = time.time()
    probe = F.fit(img, lam, arch, F.Schedule(iters=10), seed=0, device=device, init=init)  # warms up
    probe = F.fit(img, lam, arch, F.Schedule(iters=20), seed=0, device=device, init=init)
    budget = min(share, deadline - time.time()) * 0.85
    fit_iters = int(max(50, min(iters + cands * warm, budget / max(probe.s_per_iter, 1e-4))))
    if max_iters:  # dry runs
        fit_iters = min(fit_iters, max_iters)
    if init is not None:  # as the codec: no warm-up from a pre-fitted start
        sched = F.Schedule(iters=fit_iters)
    else:
        scale = fit_iters / (iters + cands * warm)
        sched = F.Schedule(iters=max(40, int(iters * scale)), candidates=cands,
                           warm=int(warm * scale) if cands > 1 else 0)
    r = F.fit(img, lam, arch, sched, seed=0, device=device, init=init)
    stem = f"{which}-{name}-q{q:g}"
    row = {"set": which, "image": name, "quality": q, "effort": effort, "device": device,
           "iters": r.iters_done, "fit_s": r.seconds, "s_per_iter": r.s_per_iter,
           "seconds": time.time() - t0,
           "init": card.id if card else None, "init_sha256": card.sha256 if card else None}
    try:
        import constriction  # noqa: F401
    except ImportError:
        save_state(Path(out) / f"{stem}.safetensors", row, arch, r.latents, r.params)
        return row
    row.update(_pack(img, q, arch, r.latents, r.params, Path(out) / stem, row["init"],
                     row["init_sha256"]))
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


def _pack(img, q, arch, latents, params, stem: Path, init_id: str | None = None,
          init_sha: str | None = None) -> dict:
    """Code a fitted state into a .gcz next to ``stem`` as the codec would (version 2 with the
    weights as differences from the starting networks ``init_id``; without it version 1);
    bpp, PSNR and the pixels' hash."""
    from .. import container as ct
    from ..api import strip_defaults
    from ..codecs import get_codec
    from ..codecs.overfit import DEFAULT_TILE, lambda_of
    from ..errors import FormatError
    from ..metrics import psnr
    from .pack import pack
    from .prefit import for_arch, starting_point

    h, w = img.shape[:2]
    params_ = {"q": int(round(q * 100)), "e": 9, "t": DEFAULT_TILE, "s": 0}
    init, model_id, model_hash, version = None, "", b"", 1
    if init_id:
        init = for_arch(*starting_point(init_id, init_sha), arch)
        if init is None:
            raise FormatError(f"{init_id} has no networks of this size")
        params_["w"] = 1
        model_id, model_hash, version = init_id, bytes.fromhex(init_sha), 2
    p = pack(arch, latents, params, lambda_of(q), img, init=init)
    codec = get_codec("overfit")
    data = ct.pack(ct.Container(codec_id=codec.codec_id, codec_version=version, width=w, height=h,
                                channels=3, model_id=model_id, model_hash=model_hash,
                                params=strip_defaults(codec, params_, version) if version > 1
                                else params_, streams=p.streams))
    stem.with_suffix(".gcz").write_bytes(data)
    return {"bpp": len(data) * 8 / (h * w), "psnr": float(psnr(img, p.pixels)),
            "decoded_sha256": hashlib.sha256(p.pixels.tobytes()).hexdigest(), "codec_version": version}


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
    ap.add_argument("--no-prefit", action="store_true",
                    help="random starts, self-contained version-1 files (the old recipe)")
    ap.add_argument("--iters", type=int, default=0, help="at most this many iterations (dry runs)")
    ap.add_argument("--only", default=None, help="comma-separated image names")
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
    jobs = [(a.kodak, str(out), which, n, float(q), a.effort, a.device, deadline, not a.no_prefit,
             a.iters, 0.0)
            for which in a.sets.split(",") for n in SETS[which] for q in a.qualities.split(",")
            if not a.only or n in a.only.split(",")]
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
        row.update(_pack(img, row["quality"], arch, lat, params, f.with_suffix(""), row.get("init"),
                         row.get("init_sha256")))
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
