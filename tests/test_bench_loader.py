"""The loader benchmark's command as BENCHMARKS.md prints it, at a tiny size: it runs, and the default cache
format it reports is the compact one (the figures themselves are BENCHMARKS.md's, never asserted here)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("options", [[], ["--fmt", "raw", "--levels", "1"]])
def test_the_loader_benchmark_runs_and_reports_every_path(options):
    command = [sys.executable, "benchmarks/bench_loader.py", "--images", "6", "--repeats", "1", *options]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    per_sample = float(re.search(r"([\d.]+) KiB per sample cached", out).group(1))
    assert re.search(r"mean \|difference\| [\d.]+, worst crop's mean [\d.]+", out)
    rows = re.findall(r"^(.+?)\s+([\d.]+) img/s/core\s+x([\d.]+) vs naive$", out, re.MULTILINE)
    assert [name.split(" (")[0] for name, _, _ in rows] == ["naive", "HandCropDataset", "CachedCropDataset"]
    if options:
        assert "raw rows, 1 level)" in out and per_sample > 200
    else:
        assert "jpeg rows, 2 levels" in out and per_sample <= 64
