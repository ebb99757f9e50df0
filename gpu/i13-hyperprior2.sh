#!/usr/bin/env bash
# GPU recipe for hyperprior v2 (issue 13): trains the variable-rate mean-scale hyperprior
# (N=128, M=192, 8 lambdas 0.0004..0.05, fresh 256-px crops every step, batch 32, bf16
# autocast, channels_last) from scratch for MINUTES wall minutes (less 1.5 min for start-up, loading and
# export), then exports fp16 weights + model card + loss log into $OUT/i13-hyperprior2/:
#   hp-a2-gpu.safetensors (~11 MB), hp-a2-gpu.json, hp-a2-gpu.loss.csv, train.log
#   DATA=.gpudata OUT=/tmp/o MINUTES=10 bash gpu/i13-hyperprior2.sh              (GPU)
#   DATA=.gpudata OUT=/tmp/o MINUTES=0.3 DEVICE=cpu bash gpu/i13-hyperprior2.sh  (CPU test)
# Needs only torch, numpy, pillow, safetensors. Rerunning resumes from $RUN_DIR's checkpoint.
set -euo pipefail
: "${DATA:=.gpudata}" "${OUT:?set OUT}" "${MINUTES:=10}" "${DEVICE:=cuda}"
src="$DATA"; [ -d "$DATA/train" ] && src="$DATA/train"
dst="$OUT/i13-hyperprior2"; run="${RUN_DIR:-${TMPDIR:-/tmp}/i13-hyperprior2-run}"
mkdir -p "$dst"
extra=()
if [ "$DEVICE" = cpu ]; then extra=(--batch 2 --threads 1); export OMP_NUM_THREADS=1; fi
train_min=$(python3 -c "print(round($MINUTES - 1.5, 2) if $MINUTES >= 3 else $MINUTES)")
python3 -m gancomp.train.loop --config gpu --device "$DEVICE" --minutes "$train_min" \
  --data "$src" --run-dir "$run" --export hp-a2-gpu --out "$dst" "${extra[@]}" 2>&1 | tee "$dst/train.log"
ls -l "$dst"
