"""Preloaded into the test's `dask worker` processes (`--preload`): the shard of samples from 0 blocks, the
first time, until the test has seen which worker process runs it and killed that process."""

import os
import time
from pathlib import Path

GATE = Path(os.environ["HANDGESTURE_TEST_GATE"])
DEADLINE_S = 120


def dask_setup(worker):
    import handgesture.data.prepare_sharded as prepare_sharded

    build_part = prepare_sharded.build_part

    def gated(shard):
        if shard.start == 0 and not (GATE / "open").exists():
            (GATE / f"blocked-{os.getpid()}").write_text("")
            deadline = time.monotonic() + DEADLINE_S
            while not (GATE / "open").exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # until the test kills this process
        return build_part(shard)

    prepare_sharded.build_part = gated
