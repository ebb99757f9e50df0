"""Write wavelet2's frozen conformance files (run once per format version, when it was frozen;
never over existing files). v1: formats/conformance/wavelet2/wavelet2_*.gcz; v2 (``--v2``):
formats/conformance/wavelet2_v2/, with the post-filter forced on two of the files; v3
(``--v3``): formats/conformance/wavelet2_v3/; v4 (``--v4``, written as v4 whatever the default
version): formats/conformance/wavelet2_v4/. Each folder has its own manifest.json."""
import sys
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

import gancomp
from gancomp import api

ROOT = Path(__file__).resolve().parents[1]
V2 = "--v2" in sys.argv[1:]
V3 = "--v3" in sys.argv[1:]
V4 = "--v4" in sys.argv[1:]
CONF = ROOT / "formats" / "conformance" / ("wavelet2_v4" if V4 else "wavelet2_v3" if V3
                                           else "wavelet2_v2" if V2 else "wavelet2")
DATA = ROOT / "tests" / "data"


def main() -> None:
    CONF.mkdir(exist_ok=True)
    mf = CONF / "manifest.json"
    man = json.loads(mf.read_text()) if mf.exists() else {}
    rgb = np.asarray(Image.open(DATA / "astronaut_128x96.png").convert("RGB"))
    gray = np.asarray(Image.open(DATA / "camera_gray_64.png").convert("L"))
    odd = np.asarray(Image.open(DATA / "chelsea_80x64.png").convert("RGB"))[:61, :79]
    alpha = (np.add.outer(np.arange(61), np.arange(79)) * 2 % 256).astype(np.uint8)
    if V3 or V4:
        from gancomp.codecs import wavelet2

        v = 4 if V4 else 3
        wavelet2.VERSION = v        # written as this version whatever the default
        cases = {"rgb_q35": (rgb, 35, {}), "rgb_q80_postfilter": (rgb, 80, {"postfilter": 2}),
                 **({"rgb_q5": (rgb, 5, {})} if v == 4 else {}),
                 "gray_q60": (gray, 60, {}), "rgba_odd79x61_q25": (np.dstack([odd, alpha]), 25, {})}
        files = {f"wavelet2v{v}_{k}.gcz": api.encode_array(img, "wavelet2", q, **kw)
                 for k, (img, q, kw) in cases.items()}
        for name, data in files.items():
            assert api.read_header(data).params["V"] == v, name
    elif V2:
        files = {
            "wavelet2v2_rgb_q40_postfilter.gcz": api.encode_array(rgb, "wavelet2", 40,
                                                                   postfilter=2),
            "wavelet2v2_gray_q75.gcz": api.encode_array(gray, "wavelet2", 75),
            "wavelet2v2_rgba_odd79x61_q25_postfilter.gcz": api.encode_array(
                np.dstack([odd, alpha]), "wavelet2", 25, postfilter=2),
        }
    else:
        files = {
            "wavelet2_rgb_q50.gcz": api.encode_array(rgb, "wavelet2", 50),
            "wavelet2_gray_q75.gcz": api.encode_array(gray, "wavelet2", 75),
            "wavelet2_rgba_odd79x61_q30.gcz": api.encode_array(np.dstack([odd, alpha]),
                                                               "wavelet2", 30),
        }
    for name, data in files.items():
        path = CONF / name
        if path.exists() or name in man:
            raise SystemExit(f"{name} exists: conformance files are frozen")
        path.write_bytes(data)
        px = api.decode_array(data)
        man[name] = {"sha256_file": hashlib.sha256(data).hexdigest(), "shape": list(px.shape),
                     "sha256_pixels": hashlib.sha256(px.tobytes()).hexdigest(),
                     "written_by": f"gancomp {gancomp.__version__}"}
    (CONF / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")


if __name__ == "__main__":
    main()
