"""The GPU check's command, dry-run on CPU as BENCHMARKS.md prints it: every step runs (the CUDA tests are
collected and skipped, bench_gpu.py runs its quick CPU variant) and the results land in $OUT."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_gpu_check_dry_runs_on_cpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    done = subprocess.run(
        ["scripts/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tests = (tmp_path / "cuda-tests.log").read_text()
    cuda_tests = sum(
        1
        for path in (ROOT / "tests").rglob("test_*.py")
        for line in path.read_text().splitlines()
        if line.startswith("def test_") and "cuda" in path.name
    )
    assert cuda_tests >= 4 and "error" not in tests.lower() and "needs a CUDA device" in tests
    assert f"{cuda_tests + 1} skipped" in tests  # every CUDA test (and the RNG one) collected, none failed
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert {"ResNet18", "MobileNetV3_small"} <= set(json.dumps(results).split('"'))
