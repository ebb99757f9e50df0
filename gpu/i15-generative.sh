#!/usr/bin/env bash
# GPU recipe of branch i15-generative: trains, in parallel on one GPU, the `generative` codec's
# photo model (gen-gpu), its faces model (gen-faces-gpu) and the `ablative` inpainting model
# (abl-gpu), each for about MINUTES wall minutes, with bf16 autocast and channels_last, then
# exports safetensors weights + model cards and the loss logs into $OUT/i15-generative/.
# Env: DATA (folder with train/**/*.jpg and faces/*.jpg), OUT, MINUTES; DEVICE (default cuda).
# Run from the repository root.
set -euo pipefail
: "${DATA:?}" "${OUT:?}" "${MINUTES:?}"
DEVICE="${DEVICE:-cuda}"
PY="${PYTHON:-python}"
DEST="$OUT/i15-generative"
RUNS="${RUNS:-/tmp/i15-generative-runs}"   # checkpoints and crop caches stay out of $OUT
mkdir -p "$DEST" "$RUNS"
# leave time for crop extraction and export
TM=$("$PY" -c "print(round(max($MINUTES * 0.7, $MINUTES - 1.5), 3))")
export OMP_NUM_THREADS=2
"$PY" -m gancomp.train.generative --preset gpu --device "$DEVICE" --data "$DATA/train" \
  --out "$RUNS/gen" --minutes "$TM" --fresh --export "$DEST" --model-id gen-gpu \
  > "$DEST/gen-gpu.log" 2>&1 &
P1=$!
"$PY" -m gancomp.train.ablative --preset gpu --device "$DEVICE" --data "$DATA/train" \
  --out "$RUNS/abl" --minutes "$TM" --fresh --export "$DEST" --model-id abl-gpu \
  > "$DEST/abl-gpu.log" 2>&1 &
P2=$!
"$PY" -m gancomp.train.generative --preset faces-gpu --device "$DEVICE" --data "$DATA/faces" \
  --out "$RUNS/faces" --minutes "$TM" --fresh --export "$DEST" --model-id gen-faces-gpu \
  > "$DEST/gen-faces-gpu.log" 2>&1 &
P3=$!
rc=0
wait $P1 || rc=1
wait $P2 || rc=1
wait $P3 || rc=1
for r in gen abl faces; do cp "$RUNS/$r/loss.csv" "$DEST/loss-$r.csv" 2>/dev/null || true; done
ls -l "$DEST"
du -sh "$DEST"
exit $rc
