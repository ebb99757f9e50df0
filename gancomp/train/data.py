"""Training crops: extracted once from an image folder into a uint8 .npy cache, so training
steps read memory instead of decoding JPEGs. Kodak is refused: it is the test set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import InputError

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp"}


def list_images(folder: str | Path) -> list[Path]:
    """All images under ``folder`` (recursive, sorted); refuses anything under a kodak dir."""
    root = Path(folder)
    if "kodak" in str(root.resolve()).lower():
        raise InputError(f"refusing to train on {root}: Kodak is the test set")
    if not root.is_dir():
        raise InputError(f"training folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise InputError(f"no images in {root}")
    return files


def is_held_out(path: str | Path) -> bool:
    """The project's held-back photos: about 5 % of shared/data/train, chosen by a hash of the
    file name. Never train or tune on them; they are the unseen test set beside Kodak."""
    return hashlib.sha256(Path(path).name.encode()).digest()[0] < 13


def split_held_out(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(training files, held-back files) by :func:`is_held_out`."""
    return [f for f in files if not is_held_out(f)], [f for f in files if is_held_out(f)]


def extract_crops(files: list[Path], crop: int, per_image: int, seed: int,
                  downscale: tuple[float, float] = (0.5, 1.0)) -> np.ndarray:
    """(n, crop, crop, 3) uint8 random crops; half of them from a randomly downscaled copy
    (downscaling removes sensor noise and JPEG blocking of the sources)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for f in files:
        img = Image.open(f).convert("RGB")
        versions = [np.asarray(img)]
        s = rng.uniform(*downscale)
        w, h = img.size
        if min(w, h) * s >= crop:
            versions.append(np.asarray(img.resize((round(w * s), round(h * s)), Image.LANCZOS)))
        for k in range(per_image):
            a = versions[k % len(versions)]
            if a.shape[0] < crop or a.shape[1] < crop:
                continue
            y = rng.integers(0, a.shape[0] - crop + 1)
            x = rng.integers(0, a.shape[1] - crop + 1)
            out.append(a[y:y + crop, x:x + crop])
    if not out:
        raise InputError(f"no image is at least {crop}x{crop}")
    return np.stack(out)


def crop_cache(folder: str | Path, crop: int, per_image: int, seed: int, cache_dir: Path) -> np.ndarray:
    """Load (or build once) the crop cache for these settings, memory-mapped."""
    files = list_images(folder)
    key = hashlib.sha256("\n".join(map(str, files)).encode() + f"{crop},{per_image},{seed}".encode())
    path = Path(cache_dir) / f"crops_{crop}_{per_image}_{key.hexdigest()[:12]}.npy"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = extract_crops(files, crop, per_image, seed)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)
    return np.load(path, mmap_mode="r")


def batch(crops: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random batch (B, 3, H, W) float32 in [0, 1] with random flips."""
    idx = rng.integers(0, crops.shape[0], size)
    b = np.asarray(crops[np.sort(idx)]).astype(np.float32) / 255.0
    if rng.random() < 0.5:
        b = b[:, :, ::-1]
    if rng.random() < 0.5:
        b = b[:, ::-1]
    return np.ascontiguousarray(b.transpose(0, 3, 1, 2))
