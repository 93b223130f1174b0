"""A shard on a Dask worker (MALLOC_TRIM_THRESHOLD_ set by the nanny) takes frame-sized buffers from the heap,
not from a fresh mapping per frame, and leaves the worker's malloc settings as it found them."""

import os
import subprocess
import sys
import threading

import pytest

from handgesture.data import worker_heap
from handgesture.data.worker_heap import frame_sized_heap

# Frames decoded and freed, with and without the shard's heap, counting minor page faults: a fresh
# mapping per 6 MB buffer faults each of its pages in again (about 1,500 per frame); the heap only once, as it
# grows to hold frames (its first few frames may still be mapped while brk finds room; a shard has thousands).
FAULTS_PER_FRAME = r"""
import resource, sys, torch
from handgesture.data.worker_heap import frame_sized_heap

def faults(frames=40):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(frames):
        torch.empty(1080, 1920, 3, dtype=torch.uint8).fill_(1)  # a full-HD frame, decoded then freed
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / frames

mapped = faults()
with frame_sized_heap():
    faults(frames=10)
    heaped = faults()
print(mapped, heaped)
"""


@pytest.mark.skipif(worker_heap._glibc() is None, reason="mallopt is glibc's")
def test_under_a_dask_trim_threshold_a_shard_reuses_frame_buffers_instead_of_faulting_them_in():
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_FRAME], env=env, capture_output=True, text=True, check=True
    )
    mapped, heaped = map(float, run.stdout.split())
    assert mapped > 1000  # the setting's cost, as a Dask worker had it: every page of every frame
    assert heaped < mapped / 10


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(worker_heap, "_glibc", lambda: fake)
    return fake


def test_the_workers_settings_are_put_back_and_the_heap_trimmed_after_the_last_shard(libc, monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    entered, release = threading.Event(), threading.Event()

    def second_shard():
        with frame_sized_heap():
            entered.set()
            release.wait(timeout=60)

    with frame_sized_heap():
        other = threading.Thread(target=second_shard)
        other.start()
        assert entered.wait(timeout=60)
        release.set()
        other.join(timeout=60)
        # set once for both shards, and still set while one runs
        assert libc.calls == [("mallopt", -3, 32 * 2**20), ("mallopt", -1, 256 * 2**20)]
    assert libc.calls[2:] == [("mallopt", -3, 128 * 1024), ("mallopt", -1, 65536), ("malloc_trim", 0)]


def test_a_process_with_glibcs_own_thresholds_is_left_alone(libc, monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with frame_sized_heap():
        pass
    assert libc.calls == []
