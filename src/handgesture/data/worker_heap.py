"""Frame-sized buffers from the heap while a shard runs on a Dask worker.

Dask's nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536 (distributed.nanny.pre-spawn-environ),
and a threshold set at all stops glibc from raising its mmap threshold as large blocks are freed: every
buffer over 128 KiB (a full-HD frame decoded is 6 MB) is then mapped, faulted in page by page (about 1,500
faults a frame) and unmapped again. A worker decoded 30 frames per CPU-second where one process decodes 60,
40% of its CPU in the kernel (BENCHMARKS.md section 10). So for a shard's duration frame-sized blocks come
from the heap and stay there; after it, the worker's settings are put back and the heap trimmed, as Dask
wants between tasks.
"""

from __future__ import annotations

import ctypes
import os
import threading
from contextlib import contextmanager
from functools import cache

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_SHARD_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest (64-bit): any frame up to 4K stays on the heap
_SHARD_TRIM_THRESHOLD = 256 * 2**20
_GLIBC_MMAP_THRESHOLD = 128 * 2**10  # what it is when only the trim threshold was set
_heap_lock = threading.Lock()
_shards_running = 0  # in this process: a worker with several threads runs several shards at once


@contextmanager
def frame_sized_heap():
    """Within: large blocks from the heap, when this process runs under glibc with a trim threshold set
    (a Dask worker's); otherwise glibc's own sliding thresholds already do this, and nothing changes."""
    global _shards_running
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "")
    libc = _glibc() if trim.isdigit() else None
    if libc is None:
        yield
        return
    with _heap_lock:
        if _shards_running == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, _SHARD_MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, _SHARD_TRIM_THRESHOLD)
        _shards_running += 1
    try:
        yield
    finally:
        with _heap_lock:
            _shards_running -= 1
            if _shards_running == 0:
                mmap = os.environ.get("MALLOC_MMAP_THRESHOLD_", "")
                libc.mallopt(_M_MMAP_THRESHOLD, int(mmap) if mmap.isdigit() else _GLIBC_MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, int(trim))
                libc.malloc_trim(0)


@cache
def _glibc():
    """The C library when it is glibc (it has mallopt and malloc_trim), else None (macOS, Windows)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (present, or AttributeError)
    except (OSError, AttributeError):
        return None
    return libc
