#!/usr/bin/env bash
# i17-faces: train the v2 face model of gan-inversion (ganinv-faces64-v2: 256-dim latent,
# learned factorized entropy model, rate steered to 800 bits per face) from scratch on the
# packed training faces (.gpudata/faces/*.jpg: face ids 1..4500 as JPEG q90; ids > 7250 are
# never read), for MINUTES wall minutes with bf16 autocast and channels_last on CUDA.
# Output: $OUT/i17-faces/ganinv-faces64-v2g.{safetensors,json} (fp16 weights, ~7 MB) + log.csv
#   DATA=.gpudata OUT=/tmp/o MINUTES=0.3 DEVICE=cpu bash gpu/i17-faces.sh   # CPU test
set -euo pipefail
: "${DATA:=.gpudata}" "${OUT:?set OUT}" "${MINUTES:=7}" "${DEVICE:=cuda}"
dst="$OUT/i17-faces"; run="${RUN_DIR:-/tmp/i17-faces-run}"
mkdir -p "$dst"; rm -rf "$run"
python3 -m gancomp.train.ganinv "$DATA/faces" --config v2 --device "$DEVICE" \
  --minutes "$MINUTES" --batch 128 --lr 5e-4 --decay --target-bits 800 \
  --run "$run" --ckpt-every 1000000 --log-every 200 \
  --export "$dst" --name ganinv-faces64-v2g
cp "$run/log.csv" "$dst/log.csv"
ls -la "$dst"
