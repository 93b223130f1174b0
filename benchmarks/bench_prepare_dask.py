"""Sharded prepare on local Dask workers: the same shards in one process, on 1 worker and on 2, and a full-v2
estimate.

One dataset of synthetic frames is planned once (`plan_prepare`: annotations read, cache keyed, shards
cut); then, round robin, the same shards (`prepare_shard`, what the prepare-shard task runs) are built into
an empty cache folder by this process (one thread: the baseline a worker should match) and by a LocalCluster
of 1 and of 2 one-thread worker processes, and `finish_prepare` assembles them. Timed: from the first shard
to the cache assembled, best of ``--repeats``; the shards' CPU seconds (this process's, or the workers')
are printed too, a rate that other load on the machine does not change. Prefect's API is left out (a flow's
fixed cost, BENCHMARKS.md section 2): this measures the engine and the work.

    .venv/bin/python benchmarks/bench_prepare_dask.py --images 320 --frame 1920 1080 --repeats 2
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: the in-process baseline, one core

from distributed import Client, LocalCluster  # noqa: E402

from handgesture.config import load_config  # noqa: E402
from handgesture.data.prepare_sharded import finish_prepare, plan_prepare, prepare_shard  # noqa: E402
from handgesture.data.synthetic import generate_synthetic  # noqa: E402

TARGETS = ["call", "fist", "like", "palm"]
V2_FRAMES, V2_HANDS = 1_086_158, 1_500_000


def timed_prepare(config, workers: int, shards_per_worker: int) -> tuple[float, float, int, int]:
    """(seconds, the shards' CPU seconds) to build and assemble every part on `workers` processes (0: in
    this one); the frames and hands prepared."""
    shutil.rmtree(config.dataset.cache_dir, ignore_errors=True)
    plan = plan_prepare(config, 1)
    samples = plan.splits["train"].samples
    config.prepare.shard_size = math.ceil(len(samples) / (2 * shards_per_worker))  # the same shards always
    plan = plan_prepare(config, 2 * shards_per_worker)
    shards = plan.shards(config)
    if workers == 0:
        cpu, start = _cpu_seconds(), time.perf_counter()
        for shard in shards:
            prepare_shard(config, shard)
        cpu = _cpu_seconds() - cpu
        finish_prepare(config, plan)
        return time.perf_counter() - start, cpu, len({s.image for s in samples}), len(samples)
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        cpu = sum(client.run(_cpu_seconds).values())
        start = time.perf_counter()
        client.gather(client.map(prepare_shard, [config] * len(shards), shards, pure=False))
        finish_prepare(config, plan)
        seconds = time.perf_counter() - start
        cpu = sum(client.run(_cpu_seconds).values()) - cpu
    return seconds, cpu, len({s.image for s in samples}), len(samples)


def _cpu_seconds() -> float:
    """This process's CPU seconds so far, user and system (a Dask worker's own, run there)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="frames in the dataset")
    parser.add_argument("--frame", type=int, nargs=2, default=[1280, 720], metavar=("W", "H"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shards-per-worker", type=int, default=4)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-prepare-dask-"))
    try:
        per_class = max(1, args.images // len(TARGETS))
        data = generate_synthetic(
            scratch / "data",
            per_class=per_class,
            users=4,
            frame_size=tuple(args.frame),
            targets=TARGETS,
            seed=1,
        )
        config = load_config(
            None,
            [
                f"dataset.annotations={data['annotations']}",
                f"dataset.dataset={data['dataset']}",
                f"dataset.cache_dir={scratch / 'cache'}",
                f"dataset.targets=[{','.join(TARGETS)}]",
            ],
        )
        best, cpu = {}, {}
        for _ in range(args.repeats):
            for workers in (0, 1, 2):  # round robin: the machine's other load falls on each
                seconds, seconds_cpu, frames, hands = timed_prepare(config, workers, args.shards_per_worker)
                best[workers] = min(best.get(workers, math.inf), seconds)
                cpu[workers] = min(cpu.get(workers, math.inf), seconds_cpu)
        rate = frames / best[1]
        speedup = best[1] / best[2]
        print(
            f"{frames} frames ({hands} hands) of {args.frame[0]} x {args.frame[1]}, "
            f"{2 * args.shards_per_worker} shards, best of {args.repeats}"
        )
        print(f"1 process  {best[0]:8.2f} s  {frames / best[0]:8.1f} frames/s  (no Dask, one thread)")
        print(f"1 worker   {best[1]:8.2f} s  {rate:8.1f} frames/s  {hands / best[1]:8.1f} hands/s")
        print(
            f"2 workers  {best[2]:8.2f} s  {frames / best[2]:8.1f} frames/s  "
            f"x{speedup:.2f} vs 1 (target >= 1.7)"
        )
        print("the shards' CPU seconds, and frames per CPU-second:")
        for workers, name in ((0, "1 process"), (1, "1 worker"), (2, "2 workers")):
            print(f"  {name:<10} {cpu[workers]:8.2f} s  {frames / cpu[workers]:8.1f} frames/s")
        efficiency = speedup / 2
        print(
            f"full v2 ({V2_FRAMES} frames, {V2_HANDS} hands) at {rate:.1f} frames/s per worker, "
            f"{efficiency:.0%} scaling efficiency:"
        )
        for n in (1, 8, 32, 128):
            hours = V2_FRAMES / (rate * (n if n == 1 else n * efficiency)) / 3600
            print(f"  {n:4d} workers  {hours:8.2f} h")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
