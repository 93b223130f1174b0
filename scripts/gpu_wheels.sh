#!/usr/bin/env bash
# The Python packages the GPU check needs that the GPU machine lacks, as wheels in .whl/ (make gpu-wheels).
#
# That machine has Python 3.12 with torch, torchvision, torchmetrics, tensorboard, matplotlib, pytest and
# pytest-timeout, and no package index. What it lacks is Prefect (for the flow), OmegaConf (the config) and
# boto3 (the storage layer imports it): their whole dependency closure is downloaded here for CPython 3.12 on
# manylinux x86-64, at this repository's pinned versions where requirements.lock pins them. antlr4 4.9.3,
# which OmegaConf pins, exists as a source release only: it is pure Python, so it is built into a wheel here.
# scripts/gpu_check.sh installs .whl/ into /tmp/site there and puts it first on PYTHONPATH.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PIP="${PIP:-$REPO/.venv/bin/pip}"
OUT=.whl
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
rm -rf "$OUT" && mkdir -p "$OUT"
pins() { grep -iE "^($(IFS='|'; echo "$*"))==" requirements.lock; }
# The closure of Prefect and boto3, held to the lock's versions (a pin without a 3.12 wheel falls back).
grep -vi '^antlr4-python3-runtime==' requirements.lock > "$OUT/constraints.txt"
"$PIP" download --quiet "${TARGET[@]}" -c "$OUT/constraints.txt" -d "$OUT" $(pins prefect boto3)
"$PIP" download --quiet "${TARGET[@]}" --no-deps -d "$OUT" $(pins omegaconf)
"$PIP" wheel --quiet --no-deps -w "$OUT" $(pins antlr4-python3-runtime)
rm "$OUT/constraints.txt"
echo "$(ls "$OUT" | wc -l) wheels, $(du -sh "$OUT" | cut -f1) in $OUT/ (the device tool carries at most 64 MiB with the tree)"
