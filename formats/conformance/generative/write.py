"""Write the generative conformance files that are not there yet (existing ones are frozen:
never rewritten) and add them to manifest.json. Run from the repository root:

    .venv/bin/python formats/conformance/generative/write.py

gen_v2_astronaut_q40.gcz: codec version 2 (latent model gen-a2-cpu, GAN decoder pixels).
gen_v3_astronaut_q60.gcz: codec version 3 (wavelet2 bitstream + generator v3 gen-w2-cpu,
GAN decoder pixels, strength picked by the encoder). Both need the shipped models.
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


def main() -> None:
    import torch

    torch.set_num_threads(1)
    img = np.asarray(Image.open(DATA / "astronaut_128x96.png").convert("RGB"))
    man_path = HERE / "manifest.json"
    man = json.loads(man_path.read_text()) if man_path.exists() else {}
    cases = {"gen_v2_astronaut_q40.gcz": dict(quality=40, model="gen-a2-cpu"),
             "gen_v3_astronaut_q60.gcz": dict(quality=60, model="gen-w2-cpu")}
    for name, kw in cases.items():
        f = HERE / name
        if not f.exists():
            f.write_bytes(api.encode_array(img, codec="generative", **kw))
        if name in man:
            continue
        data = f.read_bytes()
        px = api.decode_array(data)
        man[name] = {"sha256_file": hashlib.sha256(data).hexdigest(), "shape": list(px.shape),
                     "sha256_pixels": hashlib.sha256(px.tobytes()).hexdigest(),
                     "codec_version": data[7], "written_by": f"gancomp {__version__}"}
    man_path.write_text(json.dumps(man, indent=2) + "\n")


if __name__ == "__main__":
    main()
