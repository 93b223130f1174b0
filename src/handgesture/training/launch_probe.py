"""Whether torch's c10d store answers at HOST:PORT, told within SECONDS: `python -I launch_probe.py HOST PORT
SECONDS` prints `ok`, `silent` or `error: <why>`.

`handgesture.training.distributed.check_rendezvous` runs this as a process of its own because torch's store
client ignores its timeout on a service that accepts connections and never answers: it waits in C++, deaf to
signals, and a process that exits while it waits aborts. Here the client waits in a daemon thread, and the
process leaves with `os._exit` once it has its answer, without finalizing under that thread.
"""

import os
import sys
import threading
from datetime import timedelta

from torch.distributed import TCPStore


def probe(host: str, port: int, seconds: float) -> str:
    outcome: list[str] = []

    def connect() -> None:
        try:
            TCPStore(host, port, is_master=False, timeout=timedelta(seconds=seconds))
            outcome.append("ok")
        except Exception as exc:  # DistNetworkError, DistStoreError, RuntimeError, ...: all say "not a store"
            lines = str(exc).strip().splitlines()  # the first line; the rest is torch's C++ stack
            outcome.append(f"error: {type(exc).__name__}: {lines[0] if lines else ''}")

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0] if outcome else "silent"


if __name__ == "__main__":
    print(probe(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])), flush=True)
    os._exit(0)
