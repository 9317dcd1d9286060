#!/usr/bin/env bash
# One call on a lent GPU machine (issue 21's "prepared GPU run"): a training leg of the flow
# denoiser, the CUDA tests and the torch CUDA engine's timings, everything written under $OUT.
#
#   bash benchmarks/device/prepare.sh            # here, once: photos and wheels into ignored folders
#   run(command="bash benchmarks/device/run.sh", carry=[".device-data", ".device-wheels"], timeout_s=600)
#   bash benchmarks/device/run.sh --dry-run      # CPU, tiny, seconds: what tests/test_device_script.py runs
#
# The training leg is CPU work (numba block matching builds the training groups; the fit is closed
# form), so it uses the machine's cores, not its GPU: every core but one generates shards for
# TRAIN_SECONDS, then the fit runs. Files back (at most 8, 16 MiB each): group_flow.npz (the fitted
# tables: `python -m flowrt.export.denoiser_export`'s input), summary.json, and the logs.
set -euo pipefail
cd "$(dirname "$0")/../.."

DRY=0
PY=${PYTHON:-python}
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-$(mktemp -d)}
DATA=${FLOWRT_DEVICE_DATA:-.device-data}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ "$DRY" = 1 ]; then
    TRAIN_SECONDS=${TRAIN_SECONDS:-15}; WORKERS=1; CROPS=2; KEEP=8; CROP=48
else
    TRAIN_SECONDS=${TRAIN_SECONDS:-420}; WORKERS=$(( $(nproc) > 2 ? $(nproc) - 1 : 1 )); CROPS=40; KEEP=48; CROP=96
fi
log() { echo "== $(date +%H:%M:%S) $*" | tee -a "$OUT/run.log"; }

if [ -d .device-wheels ] && [ "$DRY" = 0 ]; then
    log "installing carried wheels"
    "$PY" -m pip install -q --no-index --find-links .device-wheels -r benchmarks/device/requirements.txt >>"$OUT/run.log" 2>&1 || log "some wheels did not install"
fi
[ "$DRY" = 1 ] || "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/run.log" 2>&1

log "training leg: $WORKERS shard workers for ${TRAIN_SECONDS}s on $DATA"
started=$(date +%s)
for w in $(seq 0 $((WORKERS - 1))); do
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 timeout --signal=TERM "$TRAIN_SECONDS" \
        "$PY" -m flowrt.train.group_data --data "$DATA" --out "$WORK/shards" --first-seed $((100000 + w * 1000)) \
        --shards 1000 --crops "$CROPS" --crop "$CROP" --keep "$KEEP" >>"$OUT/shards.log" 2>&1 &
done
wait || true
shards=$(ls "$WORK/shards" 2>/dev/null | grep -c '^shard-.*\.npz$' || true)
if [ "$shards" -eq 0 ]; then   # a loaded machine can spend the whole budget starting up: the fit needs one
    log "no shard within ${TRAIN_SECONDS}s; making one untimed"
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 "$PY" -m flowrt.train.group_data --data "$DATA" --out "$WORK/shards" \
        --first-seed 100000 --shards 1 --crops "$CROPS" --crop "$CROP" --keep "$KEEP" >>"$OUT/shards.log" 2>&1
    shards=$(ls "$WORK/shards" 2>/dev/null | grep -c '^shard-.*\.npz$' || true)
fi
log "$shards shards in $(( $(date +%s) - started ))s; fitting"
"$PY" -m flowrt.train.group_fit --shards "$WORK/shards" --out "$WORK/fit" >>"$OUT/run.log" 2>&1
cp "$WORK/fit/group_flow.npz" "$OUT/"

if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    log "CUDA tests"
    "$PY" -m pytest -q -m cuda tests >"$OUT/cuda_tests.log" 2>&1 && cuda_tests=passed || cuda_tests=failed
    log "torch CUDA engine timings"
    "$PY" benchmarks/device/cuda_timing.py --sizes 512,2048 --out "$OUT/cuda_timing.json" >>"$OUT/run.log" 2>&1 \
        || log "timing failed"
else
    cuda_tests="skipped: no CUDA device"
    log "$cuda_tests"
fi
"$PY" - "$OUT" "$shards" "$TRAIN_SECONDS" "$WORKERS" "$cuda_tests" <<'PY'
import json, sys
out, shards, seconds, workers, cuda = sys.argv[1:]
summary = {"shards": int(shards), "train_seconds": int(seconds), "workers": int(workers), "cuda_tests": cuda,
           "fit": "group_flow.npz"}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary))
PY
log "done: $OUT"
