"""Write the overfit conformance files that are not there yet (existing ones are frozen: never
rewritten) and add them to manifest.json. Run from the repository root:

    .venv/bin/python formats/conformance/overfit/write.py

overfit_v1_q60.gcz is a codec-version-1 file (random start, self-contained weights); it was
written by the version-1 encoder (commit b8f5743) with the same call, which this script can no
longer reproduce, so it is only recorded, never rewritten. overfit_v2_q60.gcz is version 2
(weights as differences from models/overfit-init-v1).
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
    img = np.asarray(Image.open(DATA / "astronaut_128x96.png").convert("RGB"))[:64, :96].copy()
    man_path = HERE / "manifest.json"
    man = json.loads(man_path.read_text()) if man_path.exists() else {}
    cases = {"overfit_v1_q60.gcz": None,
             "overfit_v2_q60.gcz": dict(quality=60, effort=1, iters=40, seed=0)}
    for name, kw in cases.items():
        f = HERE / name
        if not f.exists():
            if kw is None:
                continue
            f.write_bytes(api.encode_array(img, codec="overfit", **kw))
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
