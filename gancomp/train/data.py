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


def load_images(folder: str | Path, crop: int, downscaled_copy: bool = True,
                seed: int = 0) -> list[np.ndarray]:
    """The training split of ``folder`` (held-back photos left out) as uint8 (H, W, 3) arrays,
    each at least ``crop`` on its short side (smaller ones are skipped). With
    ``downscaled_copy`` each large enough photo also gets one copy at a random 0.5-1x scale
    (downscaling removes sensor noise and JPEG blocking of the sources)."""
    from PIL import Image

    files, _ = split_held_out(list_images(folder))
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for f in files:
        img = Image.open(f).convert("RGB")
        w, h = img.size
        if min(w, h) >= crop:
            out.append(np.asarray(img))
        s = rng.uniform(0.5, 1.0)
        if downscaled_copy and min(w, h) * s >= crop:
            out.append(np.asarray(img.resize((round(w * s), round(h * s)), Image.LANCZOS)))
    if not out:
        raise InputError(f"no training image in {folder} is at least {crop}x{crop}")
    return out


class CropSampler:
    """Fresh random crops every step (never a fixed crop set): random photo, random position,
    random flips and 90-degree turns, all done on ``device`` (photos live there as uint8)."""

    def __init__(self, images: list[np.ndarray], crop: int, device: str = "cpu", seed: int = 0):
        import torch

        self.crop = crop
        self.device = torch.device(device)
        self.images = [torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(self.device)
                       for a in images]
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, size: int):
        """(size, 3, crop, crop) float32 in [0, 1] on the sampler's device."""
        import torch

        c = self.crop
        pick = torch.randint(0, len(self.images), (size,), generator=self.gen).tolist()
        r = torch.rand(size, 2, generator=self.gen).tolist()
        parts = []
        for i, (ry, rx) in zip(pick, r):
            a = self.images[i]
            y = int(ry * (a.shape[1] - c + 1))
            x = int(rx * (a.shape[2] - c + 1))
            parts.append(a[:, y:y + c, x:x + c])
        b = torch.stack(parts).float().div_(255.0)
        flip = torch.rand(size, generator=self.gen).to(self.device) < 0.5
        b = torch.where(flip[:, None, None, None], b.flip(3), b)
        if torch.rand(1, generator=self.gen).item() < 0.5:   # one turn per batch (square crops)
            b = b.transpose(2, 3)
        return b.contiguous()
