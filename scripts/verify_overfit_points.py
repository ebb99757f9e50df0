"""Re-decode cached overfit benchmark points in this process and check the pixels.

Each point JSON in docs/overfit_bench records the SHA-256 of the decoded pixels the benchmark
scored; this decodes the .gcz beside it and compares. Run it in another process with another
thread count and the portable kernels, e.g.

    OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=default python scripts/verify_overfit_points.py \
        'docs/overfit_bench/full-v4-e4-*.json'

Exit 0 when every point matches, 1 otherwise.
"""
from __future__ import annotations

import glob
import hashlib
import json
import sys
from pathlib import Path


def main(patterns: list[str]) -> int:
    from gancomp import api

    files = sorted({f for p in patterns for f in glob.glob(p)})
    bad = 0
    for f in files:
        meta = json.loads(Path(f).read_text())
        data = Path(f).with_suffix(".gcz").read_bytes()
        rec = api.decode(data).pixels
        ok = hashlib.sha256(rec.tobytes()).hexdigest() == meta["decoded_sha256"]
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {Path(f).name} {meta['bpp']:.4f} bpp {meta['psnr']:.2f} dB")
    print(f"{len(files) - bad}/{len(files)} points decode to the scored pixels")
    return 1 if bad or not files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
