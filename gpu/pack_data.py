"""Pack the training split for the GPU machine (what travels there is capped at 64 MiB).

Training photos (held-back ones left out, see gancomp.train.data.is_held_out) resized to max
side 384 as JPEG q90 4:4:4 into .gpudata/train/<folder>/, and the first 4000 training faces (the
last 500 of the set stay held out) as JPEG q90 into .gpudata/faces/. About 40 MB. Run from the
repo root: `.venv/bin/python gpu/pack_data.py [SHARED_DATA_DIR]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from gancomp.train.data import list_images, split_held_out

MAX_SIDE, QUALITY, FACES = 384, 90, 4000


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    out = Path(".gpudata")
    train, _ = split_held_out(list_images(data / "train"))
    total = 0
    for f in train:
        im = Image.open(f).convert("RGB")
        s = MAX_SIDE / max(im.size)
        if s < 1:
            im = im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.LANCZOS)
        dst = out / "train" / f.parent.name / (f.stem + ".jpg")
        dst.parent.mkdir(parents=True, exist_ok=True)
        im.save(dst, "JPEG", quality=QUALITY, subsampling=0)
        total += dst.stat().st_size
    faces = sorted((data / "faces").glob("*.png"))[:-500][:FACES]
    (out / "faces").mkdir(parents=True, exist_ok=True)
    for f in faces:
        dst = out / "faces" / (f.stem + ".jpg")
        Image.open(f).convert("RGB").save(dst, "JPEG", quality=QUALITY, subsampling=0)
        total += dst.stat().st_size
    print(f"{len(train)} photos, {len(faces)} faces, {total / 1e6:.1f} MB in {out}")


if __name__ == "__main__":
    main()
