"""Orchestration overhead: one training epoch inside the Prefect flow vs the same library call made directly.

    .venv/bin/python benchmarks/bench_orchestration.py [--reps 3] [--per-class 80] [--model ResNet18]
        [--size 64] [--batch-size 32] [--num-workers 2]

Each repetition runs one epoch twice, in alternating order: through the flow `train-hand-gesture-classifier`
(flows/train.py: load-config -> train -> persist, Prefect's ephemeral API server, started by the first flow
call) and through `run_training(load_config(...))` directly, with the same synthetic data, config and seed
(configs/demo.yaml plus the flags). The epoch is timed from inside the training loop that both paths share
(benchlib.TrainingClock wraps engine.train_one_epoch): the training pass, validation excluded. Target: flow
epoch at most 3% slower than direct (medians). Also reported: first-import times, the ephemeral server's
start, and the time from calling the flow (or run_training) to the end of the first training step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import benchlib

TARGET = 1.03


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="flow/direct pairs, order alternating")
    parser.add_argument("--per-class", type=int, default=80, help="synthetic frames per gesture")
    parser.add_argument("--model", default="ResNet18")
    parser.add_argument("--size", type=int, default=64, help="crop size in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2, help="loader workers (configs' default: 2)")
    return parser.parse_args()


def time_imports() -> dict[str, float]:
    """First imports in this process: what both paths need, then what only the flow adds."""
    times = {"torch + handgesture.training": time.perf_counter()}
    import handgesture.training  # noqa: F401

    times["torch + handgesture.training"] = time.perf_counter() - times["torch + handgesture.training"]
    start = time.perf_counter()
    import flows.train  # noqa: F401

    times["prefect + flows.train"] = time.perf_counter() - start
    start = time.perf_counter()
    # The first flow call would import this to start the ephemeral API; timed here instead, and listed.
    import prefect.server.api.server  # noqa: F401

    times["prefect.server.api.server"] = time.perf_counter() - start
    return times


def one_epoch(path: str, config: str, overrides: list[str], storage: str, clock) -> dict:
    """Call one path for one epoch; timings from the call and from inside its training loop."""
    from flows.train import train_hand_gesture_classifier
    from prefect.server.api.server import SubprocessASGIServer

    from handgesture.config import flow_overrides, load_config
    from handgesture.training import run_training

    def server_cpu() -> float:  # the API server runs on these cores through every later call, direct too
        server = SubprocessASGIServer().server_process  # None until the first flow call starts it
        return benchlib.process_cpu_seconds(server.pid) if server else 0.0

    cpu, mark, start = server_cpu(), len(clock.epochs), time.perf_counter()
    if path == "flow":
        result = train_hand_gesture_classifier(config=config, overrides=overrides, storage=storage)
    else:
        result = run_training(load_config(config, flow_overrides(overrides, storage)))
    total, cpu = time.perf_counter() - start, server_cpu() - cpu
    epoch = clock.since(mark)[0]
    intervals = epoch.step_intervals()
    return {
        "path": path,
        "to_loop": epoch.start - start,
        "to_first_step": epoch.steps[0][0] - start,
        "epoch": epoch.seconds,
        "step": benchlib.median(intervals),
        "steps": len(epoch.steps),
        "call": total,
        "server_cpu": cpu,
        "loss": result.metrics["train/loss"],
    }


def main() -> None:
    args = parse_args()
    benchlib.setup_env()
    print(benchlib.load_note())
    imports = time_imports()
    from prefect.server.api.server import SubprocessASGIServer

    config = str(benchlib.REPO / "configs" / "demo.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        dataset = benchlib.make_dataset(Path(tmp) / "data", per_class=args.per_class)
        overrides = [
            *benchlib.data_overrides(dataset),
            f"dataset.image_size=[{args.size},{args.size}]",
            f"model.name={args.model}",
            "train_params.epochs=1",
            f"train_params.train_batch_size={args.batch_size}",
            f"train_params.num_workers={args.num_workers}",
            "storage.experiment=bench",
            "dataset.cache_dir=null",  # frames decoded each epoch: no cache preparation in the first call
        ]
        storage = str(Path(tmp) / "runs")
        runs = []
        with benchlib.TrainingClock() as clock, benchlib.call_times(SubprocessASGIServer, "start") as starts:
            for rep in range(args.reps):
                # Alternating order, flow first: drift in machine load hits both paths alike.
                for path in ("flow", "direct") if rep % 2 == 0 else ("direct", "flow"):
                    runs.append({"rep": rep, **one_epoch(path, config, overrides, storage, clock)})
                    print(f"rep {rep} {path:6s} epoch {runs[-1]['epoch']:.2f} s", flush=True)
    report(args, dataset, imports, max((s for _, s, _ in starts), default=0.0), runs)


def report(args, dataset: dict, imports: dict[str, float], server_start: float, runs: list[dict]) -> None:
    print(
        f"\n{args.model} at {args.size} px, batch {args.batch_size}, {args.num_workers} loader workers, "
        f"{dataset['images']} synthetic frames; {runs[0]['steps']} steps per epoch; {benchlib.load_note()}"
    )
    headers = ["rep", "path", "call->loop s", "call->1st step s", "epoch s", "median step s", "call s"]
    headers += ["API server CPU s", "train loss"]
    rows = [[r["rep"], r["path"], r["to_loop"], r["to_first_step"], r["epoch"], r["step"], r["call"],
             r["server_cpu"], f"{r['loss']:.6f}"] for r in runs]  # fmt: skip
    print(benchlib.table(headers, rows))

    flow = [r for r in runs if r["path"] == "flow"]
    direct = [r for r in runs if r["path"] == "direct"]
    flow_s, direct_s = benchlib.median(r["epoch"] for r in flow), benchlib.median(r["epoch"] for r in direct)
    ratio = flow_s / direct_s
    # Each rep's pair ran back to back, so its ratio is less exposed to drift in machine speed over the run.
    paired = [f["epoch"] / d["epoch"] for f, d in zip(flow, direct, strict=True)]
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"\nepoch time, median: flow {flow_s:.2f} s, direct {direct_s:.2f} s; flow/direct = {ratio:.3f} "
          f"(target <= {TARGET}: {verdict}); per-rep flow/direct: {', '.join(f'{p:.3f}' for p in paired)} "
          f"(median {benchlib.median(paired):.3f})")  # fmt: skip
    print("\nstart-up")
    rows = [[f"first import: {name}", seconds] for name, seconds in imports.items()]
    rows.append(["ephemeral API server start (inside the first flow call)", server_start])
    rows.append(["first flow call -> end of first step (server start included)", flow[0]["to_first_step"]])
    rows.append(["later flow calls -> end of first step (median)",
                 benchlib.median(r["to_first_step"] for r in flow[1:])])  # fmt: skip
    rows.append(["run_training call -> end of first step (median)",
                 benchlib.median(r["to_first_step"] for r in direct)])  # fmt: skip
    print(benchlib.table(["what", "seconds"], rows))


if __name__ == "__main__":
    main()
