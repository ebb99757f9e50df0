#!/usr/bin/env bash
# Run every training recipe gpu/<name>.sh in parallel on one GPU machine, then pack each
# recipe's output folder into one tar under $OUT (the device tool returns at most 8 files).
#
#   OUT=/tmp/gout MINUTES=7 gpu/run_all.sh            # on the GPU machine (device tool)
#   OUT=/tmp/gout MINUTES=0.3 DEVICE=cpu GRACE=900 gpu/run_all.sh   # CPU dry run here
#
# Inputs: .gpudata/ (packed by gpu/pack_data.py) and, on the GPU machine, wheels in .whl/.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT}" "${MINUTES:=7}" "${DEVICE:=cuda}" "${GRACE:=120}"
export DATA="$PWD/.gpudata" MINUTES DEVICE PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 PYTHON=python3
work=/tmp/gpu_work; rm -rf "$work"; mkdir -p "$work"
log="$OUT/run_all.log"; mkdir -p "$OUT"
{
  echo "start $(date -u +%FT%TZ) minutes=$MINUTES device=$DEVICE"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c 'import torch,numpy;print("torch",torch.__version__,"numpy",numpy.__version__,"cuda",torch.cuda.is_available())'
} >>"$log" 2>&1
pids=(); names=()
for r in gpu/i*.sh; do
  [ -f "$r" ] || continue
  n=$(basename "$r" .sh); mkdir -p "$work/$n"
  # each recipe gets its training minutes plus GRACE seconds for start-up and export
  ( OUT="$work" timeout -k 10 "$(python3 -c "print(int($MINUTES*60+$GRACE))")" bash "$r" \
      >"$work/$n/recipe.log" 2>&1; echo "rc=$?" >>"$work/$n/recipe.log" ) &
  pids+=($!); names+=("$n")
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"
  n=${names[$i]}
  echo "== $n: $(tail -n 1 "$work/$n/recipe.log") files: $(ls "$work/$n" | tr '\n' ' ')" >>"$log"
  tail -n 25 "$work/$n/recipe.log" | sed "s/^/[$n] /" >>"$log"
  tar -C "$work" -cf "$OUT/$n.tar" "$n"
done
echo "end $(date -u +%FT%TZ)" >>"$log"
cat "$log"
