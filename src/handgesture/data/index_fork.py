"""One function run in a forked child process, its result handed back as bytes through a pipe (`index_halves`
reads half of a large annotation folder so).

Forked, not spawned: the child starts at once with this process's imported modules (a fresh interpreter would
import torch again, about 4 s). The child runs only its function and writes the bytes: it logs nothing and
starts no threads (a lock another thread of this process held at the fork would never be released there),
and it leaves by `os._exit`, so none of this process's clean-up, buffers or callers' code runs twice.
"""

from __future__ import annotations

import gc
import os
import signal
import struct
from collections.abc import Callable

_HEADER = struct.Struct("<Q")  # the result's length, so a child that died mid-write is told from one done


class Forked:
    """``work()`` running in a forked child. `result` is the bytes it returned, or None when it raised, was
    killed or wrote less than it announced; `kill` stops it. Either reaps the child and closes the pipe."""

    def __init__(self, work: Callable[[], bytes]):
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except BaseException:  # no process to be had (a limit on processes, memory)
            os.close(read_end)
            os.close(write_end)
            raise
        if pid == 0:
            os.close(read_end)
            _run_child(work, write_end)  # never returns
        os.close(write_end)
        self.pid, self._pipe = pid, read_end

    def result(self) -> bytearray | None:
        """Read before waiting: a child blocks on a full pipe until its bytes are read."""
        try:
            payload = _read_payload(self._pipe)
        except BaseException:
            self.kill()
            raise
        return payload if self._reap() == 0 else None

    def kill(self) -> None:
        if self._pipe is None:
            return
        os.kill(self.pid, signal.SIGKILL)  # an exited child is a zombie until reaped: never "no such process"
        self._reap()

    def _reap(self) -> int:
        os.close(self._pipe)
        self._pipe = None
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def _run_child(work: Callable[[], bytes], pipe: int) -> None:
    status = 1
    try:
        gc.disable()  # the child lives for one read of millions of acyclic objects (`annotations._gc_paused`)
        payload = work()
        _write_all(pipe, _HEADER.pack(len(payload)))
        _write_all(pipe, payload)
        status = 0
    except BaseException:  # the parent sees the status and does the work itself
        pass
    finally:
        os._exit(status)


def _write_all(pipe: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(pipe, view) :]


def _read_payload(pipe: int) -> bytearray | None:
    """The announced number of bytes, or None when the pipe closed before all of them came."""
    header = _read_exactly(pipe, bytearray(_HEADER.size))
    if header is None:
        return None
    return _read_exactly(pipe, bytearray(_HEADER.unpack(header)[0]))


def _read_exactly(pipe: int, buffer: bytearray) -> bytearray | None:
    view, done = memoryview(buffer), 0
    while done < len(buffer):
        count = os.readv(pipe, [view[done:]])
        if count == 0:
            return None
        done += count
    return buffer
