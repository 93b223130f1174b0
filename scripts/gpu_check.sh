#!/usr/bin/env bash
# The GPU check: everything GPU-related in one command, for the device tool's GPU machine (under 8 minutes).
#
#   make gpu-wheels                      # here, once: .whl/ with what that machine lacks (Prefect, OmegaConf, boto3)
#   device run, carry [".whl"]:  scripts/gpu_check.sh          # there; logs and JSON land in $OUT
#   PYTHON=.venv/bin/python scripts/gpu_check.sh --dry-run     # here, on CPU: the same steps, tiny and skipped
#
# 1. the CUDA-marked tests (pytest -m cuda): bf16 autocast, channels_last, pinned memory, no per-step device
#    sync, exact resume on CUDA with deterministic settings, the CUDA RNG stream's round trip;
# 2. benchmarks/bench_gpu.py: the flow against a bare loop, ResNet18 and MobileNetV3_small at 224 px.
# Each step's output goes to $OUT (a temp folder when unset); a failing step does not stop the next one, and
# the exit status is the first failure's.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
DRY_RUN=false
[ "${1:-}" = "--dry-run" ] && DRY_RUN=true
if [ -d .whl ] && ! $DRY_RUN; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$REPO/src:$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Deterministic cuBLAS (the exact-resume test), set before any CUDA context exists.
export CUBLAS_WORKSPACE_CONFIG=:4096:8
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 PREFECT_HOME="${PREFECT_HOME:-$(mktemp -d)}"
status=0
step() {  # step NAME COMMAND...: run it, log it to $OUT/NAME.log, remember the first failure
    local name=$1; shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$OUT/$name.log"
    local code=${PIPESTATUS[0]}
    echo "== $name: exit $code"
    [ "$status" -eq 0 ] && status=$code
}
command -v nvidia-smi >/dev/null && step gpu nvidia-smi
step cuda-tests "$PYTHON" -m pytest -m cuda -q -p no:cacheprovider -rs tests/unit
if $DRY_RUN; then
    step bench-gpu "$PYTHON" benchmarks/bench_gpu.py --quick --out "$OUT/gpu.json"
else
    step bench-gpu "$PYTHON" benchmarks/bench_gpu.py --out "$OUT/gpu.json"
fi
echo "results in $OUT"
exit "$status"
