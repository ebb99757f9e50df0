"""Train the starting counts of wavelet2's context models on training photos.

wavelet2's models adapt to each image, but every context starts from something: a flat start
costs each of ~1000 contexts a few bits while it learns, several percent of a small file.
This counts what the encoder codes in each context over training photos (never Kodak, never
the held-back ones) at several qualities, and turns the counts into starting counts worth
``strength`` observations per context. The result is part of wavelet2's format: a file
written with one table only decodes with the same table (the codec checks its SHA-256).

    python -m gancomp.train.w2priors --data ../shared/data/train --out gancomp/data/wavelet2_priors.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..subband import MODELS, Coders
from .data import split_held_out

INCREMENT = 16   # AdaptiveCoder's count per observation


def photos(root: Path, per_folder: int, skip: int = 0) -> list[Path]:
    """Training (not held-back) photos: ``per_folder`` of each subfolder after ``skip``."""
    subs = sorted(p for p in root.iterdir() if p.is_dir()) or [root]
    out: list[Path] = []
    for sub in subs:
        files = sorted(f for f in sub.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
        out += split_held_out(files)[0][skip:skip + per_folder]
    return out


def load(path: Path, max_side: int = 768) -> np.ndarray:
    """An RGB photo, downscaled (Lanczos) so its longer side is at most ``max_side``."""
    from PIL import Image

    im = Image.open(path).convert("RGB")
    s = max_side / max(im.size)
    if s < 1:
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    return np.asarray(im)


def collect(images: list[np.ndarray], qualities: list[float], gray_too: bool = True,
            log=print) -> dict[str, np.ndarray]:
    """Symbol counts per model and context over ``images`` x ``qualities``."""
    from ..codecs.wavelet2 import BLOCKS, FORMATS, VERSION, Wavelet2Codec, load_priors, \
        step_code_for_quality

    # the encoder's rate-distortion choices look at the live models: start them from the
    # current version's table (or the previous one's while training the current one)
    start = load_priors(VERSION) if FORMATS[VERSION][1] else load_priors(VERSION - 1)
    codec = Wavelet2Codec()
    stats = {k: np.zeros((n, a), dtype=np.int64) for k, (a, n) in MODELS.items()}
    for i, img in enumerate(images):
        variants = [img] + ([img[..., :1]] if gray_too and i % 3 == 0 else [])
        for v in variants:
            an = codec.analyse(v)
            for q in qualities:
                co = Coders(priors=start, record=True, halve_at=FORMATS[VERSION][2],
                            block=BLOCKS[VERSION])
                codec.encode_analysed(v.shape, an, step_code_for_quality(q), codec.chroma_default,
                                      coders=co)
                for k in stats:
                    stats[k] += getattr(co, k).stats
        log(f"w2priors: {i + 1}/{len(images)} images")
    return stats


def to_priors(stats: dict[str, np.ndarray], strength: float = 24.0) -> dict[str, np.ndarray]:
    """Starting counts: the smoothed frequencies of each context, worth ``strength``
    observations (flat 1s where a context never occurred)."""
    out = {}
    for k, s in stats.items():
        a = s.shape[1]
        n = s.sum(axis=1, keepdims=True)
        p = (s + 0.5) / (n + 0.5 * a)
        w = np.minimum(n, strength) * INCREMENT
        c = np.maximum(1, np.round(p * w)).astype(np.int64)
        c[n[:, 0] == 0] = 1
        out[k] = c.astype(np.uint32)
    return out


def save(priors: dict[str, np.ndarray], path: Path) -> str:
    """Write the table as safetensors; returns its SHA-256."""
    import hashlib

    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in sorted(priors.items())}, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gancomp.train.w2priors", description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="folder of training photos (subfolders ok)")
    p.add_argument("--per-folder", type=int, default=20, help="photos per subfolder")
    p.add_argument("--qualities", default="5,20,35,50,65,80")
    p.add_argument("--strength", type=float, default=24.0)
    p.add_argument("--max-side", type=int, default=768)
    p.add_argument("--skip", type=int, default=10,
                   help="leave the first N photos of each folder out (kept for tuning checks)")
    p.add_argument("--stats", default=None, help="also save the raw counts here (.safetensors)")
    p.add_argument("--from-stats", default=None, help="build the table from saved counts")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    from safetensors.numpy import load_file, save_file

    if a.from_stats:
        stats = {k: v.astype(np.int64) for k, v in load_file(a.from_stats).items()}
        what = a.from_stats
    else:
        files = photos(Path(a.data), a.per_folder, a.skip)
        stats = collect([load(f, a.max_side) for f in files],
                        [float(q) for q in a.qualities.split(",")])
        what = f"{len(files)} photos"
        if a.stats:
            save_file(stats, a.stats)
    sha = save(to_priors(stats, a.strength), Path(a.out))
    print(f"wrote {a.out} from {what}; sha256 {sha}")


if __name__ == "__main__":
    main()
