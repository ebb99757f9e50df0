#!/usr/bin/env bash
# GPU recipe for the ae codec family (issue 14): one process trains every phase (CNN-AE base
# 45 %, upsampling generator of down=2 20 %, residual AE of --passes 15 %, GAN-AE decoder 10 %,
# adversarial upsampler 10 %; gancomp/train/ae.py SHARE) for MINUTES wall minutes, then exports ae-gpu1.safetensors + card and the loss log into $OUT/i14-ae/.
#   DATA=.gpudata OUT=/tmp/gout MINUTES=7 bash gpu/i14-ae.sh             (GPU)
#   DATA=.gpudata OUT=/tmp/gout MINUTES=0.3 DEVICE=cpu bash gpu/i14-ae.sh (CPU dry run)
set -euo pipefail
: "${DATA:?set DATA}" "${OUT:?set OUT}" "${MINUTES:=7}" "${DEVICE:=cuda}"
src="$DATA"; [ -d "$DATA/train" ] && src="$DATA/train"
dst="$OUT/i14-ae"; run="${TMPDIR:-/tmp}/i14-ae-run"
mkdir -p "$dst"; rm -rf "$run"
# leave ~20 s of the minutes for crop extraction and export
train_min=$(python3 -c "print(max(0.1, $MINUTES - 0.35))")
python3 -m gancomp.train.ae --config gpu --device "$DEVICE" --minutes "$train_min" \
  --data "$src" --out "$run" --model-id ae-gpu1 2>&1 | tee "$dst/train.log"
cp "$run/ae-gpu1.safetensors" "$run/ae-gpu1.json" "$run/loss.csv" "$dst/"
ls -l "$dst"
