#!/bin/bash
# The wavelet2 benchmarks (issue 10), resumable: rerun the same command and cached rows are reused.
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
CODECS=wavelet2,wavelet,jpeg,webp,jpeg2000,avif,jpegxl,heic
nice -n 10 .venv/bin/gancomp bench ../shared/data/kodak --codecs $CODECS --section wavelet2-kodak \
  --cache docs/bench_cache/wavelet2_kodak.jsonl --json docs/bench_cache/wavelet2_kodak.json
nice -n 10 .venv/bin/gancomp bench ../shared/data/train --held-out --images 12 --codecs $CODECS \
  --section wavelet2-heldout --cache docs/bench_cache/wavelet2_heldout.jsonl
