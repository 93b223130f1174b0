"""Every benchmark command the docs print, run as printed at smoke size: it exits 0 and prints its figures.

The command's own words are kept (`.venv/bin/python` becomes this interpreter, the cwd is the repository
root) and SMOKE's arguments for its script are appended after them: argparse keeps an option's last value,
so the printed arguments are still parsed and take effect while only the sizes shrink. The figures
themselves are BENCHMARKS.md's, never asserted here. A run must leave nothing behind: no process left
running, no file in the repository tree.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.commands import split_env

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "BENCHMARKS.md", ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Printed GPU commands run on a GPU machine; tests/test_gpu_check.py dry-runs them on CPU.
GPU = ("scripts/gpu_check.sh", "benchmarks/bench_gpu.py")
TIMEOUT = 300  # seconds per command; each takes 5-60 s on 2 idle cores
MARK = "HANDGESTURE_BENCH_TEST_RUN"  # in every process a run starts (inherited), to find any left running

# Smoke sizes, appended to each printed command. The printed runs take 1-5 minutes each, and this whole file
# must stay at a few minutes on 2 cores: fewer and smaller frames, images and models, one repetition, short
# timed passes, one thread for predict. Each key must be the script of a printed command and vice versa.
SMOKE = {
    "bench_loader.py": ["--images", "6", "--repeats", "1"],
    "bench_frames.py": ["--images", "4", "--repeats", "1"],
    "bench_index.py": ["--hands", "2000", "--images", "3000", "--frames", "19", "--prepare", "20"],
    "bench_sources.py": ["--images", "8", "--repeats", "1", "--frame", "320", "240"],
    "bench_prepare_dask.py": ["--images", "8", "--repeats", "1", "--frame", "320", "240"],
    "bench_orchestration.py": [
        *["--reps", "2", "--per-class", "2", "--model", "MobileNetV3_small", "--size", "32"],
        *["--batch-size", "8", "--num-workers", "0"],
    ],
    "bench_checkpointing.py": [
        *["--every", "2", "--reps", "1", "--per-class", "2", "--model", "MobileNetV3_small", "--size", "32"],
        *["--batch-size", "8"],
    ],
    "bench_resume.py": [
        *["--reps", "1", "--per-class", "2", "--model", "MobileNetV3_small", "--size", "32"],
        *["--batch-size", "8", "--num-workers", "0"],
    ],
    "bench_ddp.py": ["--per-class", "2", "--reps", "1", "--batch-size", "8"],
    "bench_sweep.py": ["--trials", "1"],
    "bench_storage.py": ["--size-mb", "4", "--reps", "1", "--torch-model", "mobilenet_v3_small"],
    "bench_predict.py": [
        *["--size", "64", "--batch-size", "2", "--seconds", "0.1", "--repeats", "1", "--warmup", "1"],
        *["--threads", "1"],
    ],
}


def last(words: list[str], option: str, default: str) -> str:
    """The value argparse keeps for `option` (its last one), else `default` (a regex)."""
    values = [words[i + 1] for i, word in enumerate(words[:-1]) if word == option]
    return re.escape(values[-1]) if values else default


NUMBER, WORD, DIGITS = r"[-+]?[\d.]+", r"\w+", r"\d+"
# Lines each script prints (regexes, matched per line, trailing blanks stripped), given the words it ran
# with: its tables and verdicts, and where the output shows them, that the printed arguments took effect.
PRINTS: dict[str, Callable[[list[str]], list[str]]] = {
    "bench_loader.py": lambda w: [
        rf"; {NUMBER} KiB per sample cached$",
        rf"^cached crops vs the full-frame path: mean \|difference\| {NUMBER}, worst crop's mean {NUMBER}$",
        rf"^naive \(HaGRID: PIL full frame, pad\) +{NUMBER} img/s/core  x{NUMBER} vs naive$",
        rf"^HandCropDataset \(torchvision full frame\) +{NUMBER} img/s/core  x{NUMBER} vs naive$",
        rf"^CachedCropDataset \({last(w, '--fmt', WORD)} rows, {last(w, '--levels', DIGITS)} levels?\)"
        rf" +{NUMBER} img/s/core  x{NUMBER} vs naive$",
    ],
    "bench_frames.py": lambda w: [
        rf"; {NUMBER} KiB per frame cached$",
        rf"^cached frames vs decoding each time: mean \|difference\| {NUMBER}$",
        rf"^naive \(HaGRID v2: PIL decode, letterbox 144, Normalize\) +{NUMBER} img/s/core  x{NUMBER} "
        r"vs naive$",
        rf"^CachedFrameDataset \({last(w, '--fmt', WORD)} rows\) +{NUMBER} img/s/core  x{NUMBER} vs naive$",
    ],
    "bench_index.py": lambda w: [
        r"^step +seconds +CPU seconds +peak RSS GB$",
        rf"^whole index +{NUMBER} +{NUMBER} +{NUMBER}$",
        rf"^whole index: {NUMBER} s, {NUMBER} GB \(targets < {NUMBER} s, < {NUMBER} GB\): (met|not met)$",
        *(
            [rf"^{DIGITS} samples \(v2\), "]  # v2: the index only
            if last(w, "--layout", "v1") == "v2"
            else [rf"^cache preparation: {NUMBER} hands/s with 1 process, {NUMBER} with 2 "]
        ),
    ],
    "bench_sources.py": lambda w: [
        rf"^prepare from {DIGITS} frames of {last(w, '--frame', DIGITS)} x {NUMBER}, one core:$",
        rf"^extracted files +{NUMBER} frames/s/core  x1.00 vs extracted$",
        rf"^local zip +{NUMBER} frames/s/core  x{NUMBER} vs extracted$",
        rf"^S3 zip \(moto, loopback\) +{NUMBER} frames/s/core  x{NUMBER} vs extracted$",
        rf"^archives vs extracted: x{NUMBER} \(target >= 0.90\): (met|missed)$",
    ],
    "bench_prepare_dask.py": lambda w: [
        rf"^{DIGITS} frames \({DIGITS} hands\) of {last(w, '--frame', DIGITS)} x {DIGITS}, {DIGITS} shards, "
        rf"best of {last(w, '--repeats', DIGITS)}$",
        rf"^1 worker +{NUMBER} s +{NUMBER} frames/s +{NUMBER} hands/s$",
        rf"^2 workers +{NUMBER} s +{NUMBER} frames/s  x{NUMBER} vs 1 \(target >= 1.7\)$",
        rf"^ +128 workers +{NUMBER} h$",
    ],
    "bench_orchestration.py": lambda w: [
        r"^rep +path +call->loop s +call->1st step s +epoch s +median step s +call s",
        rf"^epoch time, median: flow {NUMBER} s, direct {NUMBER} s; flow/direct = {NUMBER} \(target",
        rf"^ephemeral API server start \(inside the first flow call\) +{NUMBER}$",
        rf"^later flow calls -> end of first step \(median\) +{NUMBER}$",  # a number from 2 reps on
        rf"^run_training call -> end of first step \(median\) +{NUMBER}$",
    ],
    "bench_checkpointing.py": lambda w: [
        r"^variant +mean step ms +vs none +median step ms +slowest ms +s between ckpts +ckpts/run +cost",
        rf"^none \(local\) +{NUMBER} +1\.000 ",
        rf"^local every {last(w, '--every', DIGITS)} +{NUMBER} +{NUMBER} ",
        rf"^s3 every {last(w, '--every', DIGITS)} +{NUMBER} +{NUMBER} ",
        *(
            rf"^  {store}: {NUMBER} s per checkpoint / {NUMBER} s = {NUMBER}% slower "
            r"\(target <= 3%: (met|NOT met)\)$"
            for store in ("local", "s3")
        ),
        rf"^sum: the least a commit can block +{NUMBER}$",
        rf"^S3 upload of one checkpoint, in the background +{NUMBER}$",
    ],
    "bench_resume.py": lambda w: [
        r"^checkpoint to resume from: s3://\S+/checkpoints/\S+\.pth ",
        r"^start +call -> 1st step s \(median\) +vs fresh s +restore s +download s +per rep$",
        rf"^fresh start +{NUMBER} +\+0\.00 +{NUMBER} +{NUMBER} +{NUMBER}$",
        *(
            rf"^resume, {how} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}$"
            for how in ("empty cache", "cached copy")
        ),
    ],
    "bench_ddp.py": lambda w: [
        rf"^{last(w, '--model', 'ResNet18')} at 64 px, {last(w, '--batch-size', '32')} per device, ",
        rf"^1 process : +{NUMBER} ms per step, {DIGITS} steps per epoch, +{NUMBER} img/s$",
        rf"^2 ranks   : +{NUMBER} ms per step, {DIGITS} steps per epoch, +{NUMBER} img/s$",
        rf"^overhead per step: {NUMBER}% \(2 ranks vs 1 process, same per-device batch\)$",
    ],
    "bench_sweep.py": lambda w: [
        rf"^{last(w, '--trials', '4')} trials of 1 epoch ",
        rf"^back to back \(run_training in one process\): +{NUMBER} s$",
        rf"^sweep deployment \(a flow run per trial\): +{NUMBER} s$",
        rf"^orchestration overhead: {NUMBER} s, {NUMBER} s per trial$",
    ],
    "bench_storage.py": lambda w: [
        (
            rf"^object: {NUMBER} MB \(torch\.save {last(w, '--torch-model', 'resnet152')}\), "
            if "--torch" in w
            else rf"^object: {NUMBER} MB \(random bytes\), "
        ),
        *(
            rf"^{op} +median +{NUMBER} MB/s "
            for op in ("store upload", "raw upload", "store download", "raw download")
        ),
        rf"^upload   store/raw = {NUMBER}  \(target >= 0\.80: (OK|BELOW TARGET)\)$",
        rf"^download store/raw = {NUMBER}  \(target >= 0\.80: (OK|BELOW TARGET)\)$",
    ],
    "bench_predict.py": lambda w: [
        r"^model +runtime +images/s +ms/batch \(median\) +vs eager$",
        *(
            rf"^{model} +{runtime} +{NUMBER} +{NUMBER} +x{NUMBER}$"
            for model in ("ResNet18", "MobileNetV3_small")
            for runtime in ("eager", "torchscript", "onnxruntime")
        ),
        r"^after: load average ",
    ],
}


def doc_commands() -> list[str]:
    """Every command the docs print, inline code and code block lines, as printed; `... ARGS` continues the
    previous command of the same file (as BENCHMARKS.md's loader rows do)."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
        prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
        # Inline code: a run of backticks to the next run as long, within a paragraph (CommonMark's rule).
        spans = [m[1] for m in re.findall(r"(?<!`)(`+)(?!`)((?:(?!\n\n).)+?)(?<!`)\1(?!`)", prose, re.S)]
        lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
        previous = ""
        for span in [*spans, *lines]:
            command = " ".join(span.split())
            if command.startswith("... ") and previous:
                found.append(f"{previous} {command[4:]}")
            elif command:
                found.append(command)
                previous = command
    return found


def runs(command: str) -> str | None:
    """The script a printed command runs (`python SCRIPT ...`, `SCRIPT.sh ...`), else None (prose)."""
    try:
        _, words = split_env(command)
    except ValueError:  # not shell words
        return None
    if len(words) > 1 and words[0].endswith(("python", "python3")):
        return words[1]
    return words[0] if words and words[0].endswith(".sh") else None


COMMANDS = list(dict.fromkeys(c for c in doc_commands() if (runs(c) or "").startswith("benchmarks/")))
GPU_COMMANDS = list(dict.fromkeys(c for c in doc_commands() if runs(c) in GPU))
COMMANDS = [c for c in COMMANDS if runs(c) not in GPU]


def test_every_printed_benchmark_command_has_a_smoke_size():
    """A newly printed command cannot slip by: its script needs SMOKE and PRINTS entries, and no entry is
    left for a script no longer printed."""
    assert len(COMMANDS) >= 10, COMMANDS  # the extraction itself still finds BENCHMARKS.md's commands
    printed = {Path(runs(command)).name for command in COMMANDS}
    missing = sorted(printed - SMOKE.keys()) + sorted(printed - PRINTS.keys())
    assert not missing, f"printed benchmark scripts with no smoke size or expected output here: {missing}"
    assert SMOKE.keys() == PRINTS.keys() == printed, "an entry for a script no command prints"


def test_the_printed_gpu_commands_are_the_ones_the_gpu_check_test_dry_runs():
    """GPU commands are left to tests/test_gpu_check.py: it runs scripts/gpu_check.sh --dry-run, which runs
    bench_gpu.py --quick on CPU; the full run (the same script without the flag) needs the GPU machine."""
    for command in GPU_COMMANDS:
        env, words = split_env(command)
        assert words in (["scripts/gpu_check.sh"], ["scripts/gpu_check.sh", "--dry-run"]), (
            f"`{command}` is not run by tests/test_gpu_check.py: run it there or here"
        )
        assert set(env) <= {"PYTHON", "OUT"}, command
    check = (ROOT / "tests/test_gpu_check.py").read_text()
    assert '["scripts/gpu_check.sh", "--dry-run"]' in check and '"PYTHON": sys.executable' in check
    script = (ROOT / "scripts/gpu_check.sh").read_text()
    assert re.search(r'^\s+step bench-gpu "\$PYTHON" benchmarks/bench_gpu\.py --quick ', script, re.M)


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[c.split("benchmarks/", 1)[1] for c in COMMANDS])
def test_the_printed_benchmark_command_runs_and_prints_its_figures(command, tmp_path_factory):
    env, words = split_env(command)
    script = Path(runs(command)).name
    assert script in SMOKE, f"no smoke-size arguments for {script}: add them to SMOKE"
    argv = [sys.executable, *words[1:], *SMOKE[script]]
    before = _tree()
    done, seconds, leftovers = _run(argv, env, tmp_path_factory.mktemp("bench"))
    report = (
        f"`{command}` as `{shlex.join(argv[1:])}`: exit {done.returncode} after {seconds:.0f} s\n"
        f"--- stdout (tail)\n{done.stdout[-3000:]}\n--- stderr (tail)\n{done.stderr[-3000:]}"
    )
    assert done.returncode == 0, report
    out = "\n".join(line.rstrip() for line in done.stdout.splitlines())
    missing = [line for line in PRINTS[script](argv) if not re.search(line, out, re.M)]
    assert not missing, f"not printed: {missing}\n{report}"
    assert not leftovers, f"processes still running after the benchmark exited: {leftovers}\n{report}"
    changed = sorted(path for path, stamp in _tree().items() if before.get(path) != stamp)
    assert not changed, f"files written or changed in the repository tree: {changed}\n{report}"


def _run(argv: list[str], env: dict[str, str], tmp: Path):
    """Run one command in its own session; returns (completed process, seconds, processes it left running,
    which are then killed). Its output goes to files, so a process it leaves behind cannot hold a pipe open
    and keep the test waiting. TMPDIR puts the scripts' temp folders (and Prefect homes) under pytest's tmp;
    one OpenMP thread per process keeps several busy processes on 2 cores from slowing each other tenfold."""
    mark = uuid.uuid4().hex
    env = {**os.environ, **env, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1", MARK: mark}
    logs = tmp / "stdout.log", tmp / "stderr.log"
    start = time.monotonic()
    with logs[0].open("w") as stdout, logs[1].open("w") as stderr:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    seconds = time.monotonic() - start
    out, err = (log.read_text(errors="replace") for log in logs)
    if seconds >= TIMEOUT:
        err += f"\n(killed after the {TIMEOUT} s timeout)"
    done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    return done, seconds, _left_running(mark)


def _left_running(mark: str, deadline: float = 30.0) -> dict[int, str]:
    """Processes carrying this run's mark once every one has exited or `deadline` seconds have passed (a
    server the benchmark stopped may still be on its way out); those left are killed and returned."""
    end = time.monotonic() + deadline
    while (found := _marked(mark)) and time.monotonic() < end:
        time.sleep(0.2)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return found


def _marked(mark: str) -> dict[int, str]:
    needle = f"\0{MARK}={mark}\0".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in b"\0" + (entry / "environ").read_bytes():
                    found[int(entry.name)] = (
                        (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    )
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found


def _tree() -> dict[str, tuple[int, int]]:
    """Every path in the repository tree (ignored ones too, but not .git, .venv and caches): (mtime, size)."""
    skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
    paths = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in [*dirs, *files]:
            path = Path(folder) / name
            stat = path.lstat()
            is_file = name in files
            paths[str(path.relative_to(ROOT))] = (stat.st_mtime_ns, stat.st_size) if is_file else (0, 0)
    return paths
