"""Write the .gcz 1.1 conformance files that are not there yet (existing ones are frozen:
never rewritten) and add them to manifest.json. Run from the repository root:

    .venv/bin/python formats/conformance/v1_1/write.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from gancomp import __version__, api

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "tests" / "data"


def _img(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / name))


def cases() -> dict:
    astro = np.asarray(Image.open(DATA / "astronaut_128x96.png").convert("RGB"))
    face = np.ascontiguousarray(astro[4:68, 30:94])  # the astronaut's face, 64x64
    rgba = np.concatenate([astro, np.tile(np.arange(128, dtype=np.uint8)[None, :, None] * 2,
                                          (96, 1, 1))], axis=2)
    gray = np.asarray(Image.open(DATA / "camera_gray_64.png").convert("L"))
    return {
        "wavelet_rgb_q50.gcz": lambda: api.encode_array(astro, "wavelet", 50),
        "wavelet_gray_q80.gcz": lambda: api.encode_array(gray, "wavelet", 80),
        "wavelet_rgba_icc_q30.gcz": lambda: api.encode_array(rgba, "wavelet", 30,
                                                            icc=b"not a real icc profile"),
        "kmeans_rgb_k4.gcz": lambda: api.encode_array(astro, "kmeans", colors=4),
        "ganinv_v1_face_default.gcz": lambda: api.encode_array(
            face, "gan-inversion", model="ganinv-faces64", steps=20),
        "ganinv_v1_face_ganz_r50.gcz": lambda: api.encode_array(
            face, "gan-inversion", model="ganinv-faces64", ratio=50, steps=10, seed=7),
        "ganinv_v2_face_default.gcz": lambda: api.encode_array(
            face, "gan-inversion", model="ganinv-faces64-v2"),
        "ganinv_v2_face_level4.gcz": lambda: api.encode_array(
            face, "gan-inversion", model="ganinv-faces64-v2", level=4, steps=10),
        # codec version 3: the same latents, decoded with a float64 generator
        "ganinv_v3_face_default.gcz": lambda: api.encode_array(
            face, "gan-inversion", model="ganinv-faces64-v2"),
        "ganinv_v3_face_ganz_r50.gcz": lambda: api.encode_array(
            face, "gan-inversion", model="ganinv-faces64", ratio=50, steps=10, seed=7),
    }


def main() -> None:
    mpath = HERE / "manifest.json"
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {}
    for name, make in cases().items():
        path = HERE / name
        if path.exists() or name in manifest:
            continue
        try:
            data = make()
        except Exception as exc:  # noqa: BLE001  # e.g. a model not installed yet
            print(f"skip {name}: {exc}")
            continue
        px = api.decode_array(data)
        path.write_bytes(data)
        manifest[name] = {"sha256_file": hashlib.sha256(data).hexdigest(),
                          "shape": list(px.shape),
                          "sha256_pixels": hashlib.sha256(px.tobytes()).hexdigest(),
                          "written_by": f"gancomp {__version__}", "bytes": len(data)}
        print(f"wrote {name}: {len(data)} bytes")
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
