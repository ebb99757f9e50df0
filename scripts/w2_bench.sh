#!/bin/bash
# The wavelet2 benchmarks (issue 10), resumable: rerun the same command and cached rows are reused.
# Stage 1: wavelet2 against the anchors (WebP, JPEG 2000, AVIF) on all 24 Kodak images;
# stage 2: the 12 first held-back training photos; stage 3: whole-process speed;
# stage 4: every codec on Kodak (reuses stage 1's rows). --thin: five RD points per codec.
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
KEY=wavelet2,webp,jpeg2000,avif
ALL=wavelet2,wavelet,jpeg,webp,jpeg2000,avif,jpegxl,heic
C=docs/bench_cache
nice -n 10 .venv/bin/gancomp bench ../shared/data/kodak --codecs $KEY --section wavelet2-kodak \
  --cache $C/wavelet2_kodak.jsonl --thin
nice -n 10 .venv/bin/gancomp bench ../shared/data/train --held-out --images ${HELD:-12} --codecs $KEY \
  --section wavelet2-heldout --cache $C/wavelet2_heldout.jsonl --thin
nice -n 10 .venv/bin/gancomp bench --suite speed ../shared/data/kodak --images 3 --repeat 3 \
  --codecs wavelet2:32,wavelet:36 --avif-q 50 --webp-q 60
nice -n 10 .venv/bin/gancomp bench ../shared/data/kodak --codecs $ALL --section wavelet2-kodak \
  --cache $C/wavelet2_kodak.jsonl --thin
