#!/usr/bin/env bash
# i17-faces: train the v2 face model of gan-inversion (256-dim latent, learned factorized
# entropy model, rate steered to 800 bits per face) on the packed training faces
# (.gpudata/faces/*.jpg: the first 4500 face ids as JPEG q90; ids > 7250 are never read),
# for MINUTES wall minutes with bf16 autocast and channels_last on CUDA. Two runs share the
# GPU as a hedge: "v2g" from scratch (GAN weight 0.01), "v2gi" continuing from the committed
# v1 weights without the GAN term (on CPU, adv 0 raised the training SSIM fastest).
# Output: $OUT/i17-faces/ganinv-faces64-v2g{,i}.{safetensors,json} (fp16, ~7.2 MB each),
# log_v2g.csv, log_v2gi.csv.
#   DATA=.gpudata OUT=/tmp/o MINUTES=0.3 DEVICE=cpu bash gpu/i17-faces.sh   # CPU test
set -euo pipefail
: "${DATA:=.gpudata}" "${OUT:?set OUT}" "${MINUTES:=7}" "${DEVICE:=cuda}"
dst="$OUT/i17-faces"; runs="${RUN_DIR:-/tmp/i17-faces-run}"
mkdir -p "$dst"; rm -rf "$runs"
common=(--config v2 --device "$DEVICE" --minutes "$MINUTES" --decay --target-bits 800
        --ckpt-every 1000000 --log-every 200)
python3 -m gancomp.train.ganinv "$DATA/faces" "${common[@]}" --batch 256 --lr 5e-4 --adv 0.01 \
  --run "$runs/v2g" --export "$dst" --name ganinv-faces64-v2g &
p1=$!
python3 -m gancomp.train.ganinv "$DATA/faces" "${common[@]}" --batch 256 --lr 3e-4 --adv 0 \
  --init models/ganinv-faces64.safetensors \
  --run "$runs/v2gi" --export "$dst" --name ganinv-faces64-v2gi &
p2=$!
rc=0; wait $p1 || rc=$?; wait $p2 || rc=$?
cp "$runs/v2g/log.csv" "$dst/log_v2g.csv" || true
cp "$runs/v2gi/log.csv" "$dst/log_v2gi.csv" || true
ls -la "$dst"; du -sh "$dst"
exit $rc
