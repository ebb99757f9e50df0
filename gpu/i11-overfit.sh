#!/usr/bin/env bash
# overfit (issue 11) on the GPU: fit the benchmark subset (384x256 centre crops of kodim01, 05,
# 14, 23, then the 8 full images) at the top effort with --device cuda, 8 processes in
# parallel, each job's iterations cut to fit MINUTES. Like the CPU codec, every fit starts from
# the shipped pre-fitted networks (models/overfit-init-v2) and the files are codec version 2
# (weights as differences from them; NO_PREFIT=1: random starts, version-1 files). Writes .gcz
# files (or, without constriction there, the fitted states) plus results.json into
# $OUT/i11-overfit/.
# Kodak: $KODAK, else $DATA/kodak (copy kodim01,04,05,08,14,19,21,23.png there, ~5 MB).
# Back here: python -m gancomp.overfit.gpurun --finish DIR (states only), then --verify DIR.
#   CPU dry run: OUT=/tmp/o MINUTES=1 DEVICE=cpu WORKERS=1 SETS=crops QUALITIES=40 ITERS=20 bash gpu/i11-overfit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT}" "${MINUTES:=5}" "${DEVICE:=cuda}" "${DATA:=.gpudata}"
KODAK="${KODAK:-$DATA/kodak}"
[ -f "$KODAK/kodim23.png" ] || KODAK=../shared/data/kodak
dest="$OUT/i11-overfit"; mkdir -p "$dest"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 python3 -m gancomp.overfit.gpurun \
  --kodak "$KODAK" --out "$dest" --minutes "$MINUTES" --device "$DEVICE" --effort 9 \
  --workers "${WORKERS:-8}" --sets "${SETS:-crops,full}" --qualities "${QUALITIES:-15,40,65,90}" \
  --iters "${ITERS:-0}" ${NO_PREFIT:+--no-prefit} \
  2>&1 | tee "$dest/log.txt"
