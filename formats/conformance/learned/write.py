"""Writes the frozen files of learned codecs whose models ship in models/ (run once per new
file; existing files are never rewritten). ae_v1_* were written by gancomp at commit b8f5743
(ae codec version 1) with the same calls, minus ``down``."""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gancomp import __version__, api

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent.parent / "tests" / "data"


def _astronaut(scale: int = 1) -> np.ndarray:
    im = Image.open(DATA / "astronaut_128x96.png").convert("RGB")
    if scale > 1:
        im = im.resize((128 * scale, 96 * scale), Image.BICUBIC)
    return np.asarray(im)


FILES = {
    "ae_v2_astronaut2x_q30_down2_p2_ft.gcz":       # f = 2: loop filter on the half-size pass
        lambda: api.encode_array(_astronaut(2), codec="ae", quality=30, model="ae-v2",
                                 passes=2, down=2, finetune=True),
    "ae_v2_astronaut2x_q95_ft.gcz":                # f = 3: last-layer refit + loop filter
        lambda: api.encode_array(_astronaut(2), codec="ae", quality=95, model="ae-v2",
                                 finetune=True),
    "ae_v3_astronaut2x_q20_down2_upgan_p2.gcz":    # u = 1: the adversarial upsampler
        lambda: api.encode_array(_astronaut(2), codec="ae", quality=20, model="ae-v4",
                                 passes=2, down=2, upsampler="gan"),
    "hp_v3_astronaut2x_q90_adapt.gcz":
        lambda: api.encode_array(_astronaut(2), codec="hyperprior", quality=90, model="hp-a2",
                                 adapt=True),
}


def main() -> None:
    manifest_path = HERE / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    names = sys.argv[1:] or list(FILES)
    for name in sorted({n.name for n in HERE.glob("*.gcz")} | set(names)):
        path = HERE / name
        if not path.is_file():
            path.write_bytes(FILES[name]())
        if name in manifest:
            continue
        data = path.read_bytes()
        px = api.decode_array(data)
        manifest[name] = {"sha256_file": hashlib.sha256(data).hexdigest(), "shape": list(px.shape),
                          "sha256_pixels": hashlib.sha256(px.tobytes()).hexdigest(),
                          "written_by": "gancomp b8f5743" if name.startswith("ae_v1_")
                          else f"gancomp {__version__}", "bytes": len(data),
                          "codec_version": data[7]}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
