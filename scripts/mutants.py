"""The mutation harness: break each guarantee on purpose; the tests its Guarantees row names must notice.

Each mutant is a small named change to the code, tied to a row of the Guarantees table (docs/guarantees.md).
For each, the harness copies the tree to a temporary folder (the working tree is never touched), applies the
change there, and runs only the tests that row names, in that copy. A mutant is killed when those tests
fail, and survives when they pass; any survivor fails the harness (exit 1). `make mutants` runs it.

    python scripts/mutants.py [--only NAME-SUBSTRING] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    row: str  # how the Guarantees row (docs/guarantees.md) it breaks begins
    path: str
    edits: tuple[tuple[str, str], ...]  # (exact text, replacement); each text occurs exactly once
    needs: str | None = None  # "cuda": only where a CUDA device is


def edit(old: str, new: str) -> tuple[str, str]:
    return old, new


MUTANTS = [
    Mutant(
        "python RNG stream not restored",
        "Full state",
        "src/handgesture/training/state.py",
        (edit('    random.setstate(_as_tuple(state["python"]))\n', "    pass\n"),),
    ),
    Mutant(
        "numpy RNG stream not restored",
        "Full state",
        "src/handgesture/training/state.py",
        (edit("    np.random.set_state(\n", "    (lambda restored: None)(\n"),),
    ),
    Mutant(
        "torch RNG stream not restored",
        "Full state",
        "src/handgesture/training/state.py",
        (edit('    torch.set_rng_state(state["torch"])\n', "    pass\n"),),
    ),
    Mutant(
        "cuda RNG streams not restored",
        "Full state",
        "src/handgesture/training/state.py",
        (edit('        torch.cuda.set_rng_state_all(state["cuda"])\n', "        pass\n"),),
        needs="cuda",
    ),
    Mutant(
        "optimizer state not restored",
        "Full state",
        "src/handgesture/training/state.py",
        (
            edit(
                '        _load_part(self.trainer.optimizer, checkpoint, "optimizer_state_dict")\n',
                "        pass\n",
            ),
        ),
    ),
    Mutant(
        "scheduler state not restored",
        "Full state",
        "src/handgesture/training/state.py",
        (
            edit(
                "            self.trainer.scheduler.load_state_dict(saved)\n",
                "            pass\n",
            ),
        ),
    ),
    Mutant(
        "grad scaler state not restored",
        "Full state",
        "src/handgesture/training/state.py",
        (
            edit(
                '        _load_part(self.trainer.scaler, checkpoint, "scaler_state_dict")\n', "        pass\n"
            ),
        ),
    ),
    Mutant(
        "progress counters not restored",
        "Exact resume at epoch ends",
        "src/handgesture/training/state.py",
        (edit("        self.trainer.progress = progress\n", "        pass\n"),),
    ),
    Mutant(
        "SIGTERM handler does nothing",
        "Checkpoints every N steps",
        "src/handgesture/training/committer.py",
        (edit("        self.stop_requested = True\n", "        pass\n"),),
    ),
    Mutant(
        "no checkpoint every N steps",
        "Checkpoints every N steps",
        "src/handgesture/training/committer.py",
        (edit("due_by_steps = every_n > 0 and", "due_by_steps = False and"),),
    ),
    Mutant(
        "no checkpoint every T seconds",
        "Checkpoints every N steps",
        "src/handgesture/training/committer.py",
        (edit("due_by_time = every_t > 0 and", "due_by_time = False and"),),
    ),
    Mutant(
        "sampler position reset on resume",
        "Exact resume mid-epoch",
        "src/handgesture/data/loaders.py",
        (edit("sampler.set_epoch(epoch, start=position)", "sampler.set_epoch(epoch, start=0)"),),
    ),
    Mutant(
        "writes go straight to the target (no temp + rename)",
        "Atomic commit",
        "src/handgesture/storage/local.py",
        (edit("    tmp = Path(tmp_name)\n", "    os.unlink(tmp_name)\n    tmp = target\n"),),
    ),
    Mutant(
        "no fsync before the rename",
        "Atomic commit",
        "src/handgesture/storage/local.py",
        (
            edit(
                "                os.fsync(fh.fileno())\n        os.replace(tmp, target)\n",
                "                pass\n        os.replace(tmp, target)\n",
            ),
        ),
    ),
    Mutant(
        "manifest written before the checkpoint (local and background upload)",
        "Atomic commit",
        "src/handgesture/checkpoints/run_folder.py",
        (
            edit("        self._put(data, [key, BEST] if is_best else [key])\n", ""),
            edit(
                "        self.write_manifest()\n        # Files go only",
                "        self.write_manifest()\n        self._put(data, [key, BEST] if is_best else [key])\n"
                "        # Files go only",
            ),
        ),
    ),
    Mutant(
        "checksum check skipped",
        "Verified load",
        "src/handgesture/storage/download.py",
        (edit("    if actual != sha256.lower():\n", "    if False:\n"),),
    ),
    Mutant(
        "torch.load(weights_only=False)",
        "Safe load",
        "src/handgesture/checkpoints/format.py",
        (edit('map_location="cpu", weights_only=True)', 'map_location="cpu", weights_only=False)'),),
    ),
    Mutant(
        "credentials named by their secret, not their block",
        "No secrets",
        "src/handgesture/storage/s3.py",
        (
            edit(
                'block, who = load_block(s3.block), f"credentials of saved Prefect block {s3.block!r}"',
                "block = load_block(s3.block)\n"
                '        who = f"key {block.aws_secret_access_key.get_secret_value()}"',
            ),
        ),
    ),
    Mutant(
        "the SIGTERM checkpoint is skipped",
        "Crash safety",
        "src/handgesture/training/committer.py",
        (
            edit(
                "            entry = self.commit({})\n            raise TrainingPreempted",
                '            entry = {"uri": "nothing.pth"}\n            raise TrainingPreempted',
            ),
        ),
    ),
    Mutant(
        "an upload outage is fatal instead of retried",
        "S3 outage",
        "src/handgesture/checkpoints/uploader.py",
        (
            edit(
                "                    self.last_outage = exc\n",
                "                    self.fatal = exc\n                    break\n",
            ),
        ),
    ),
    Mutant(
        "a re-run starts over instead of continuing its own run",
        "Auto-resume",
        "src/handgesture/training/resume.py",
        (edit('    if run.manifest["checkpoints"]:\n', '    if False and run.manifest["checkpoints"]:\n'),),
    ),
    Mutant(
        "no run folder lease",
        "One writer per run folder",
        "src/handgesture/checkpoints/run_folder.py",
        (
            edit(
                "        self.lease = RunLease(self.store, self.owner) if self.owner else None\n",
                "        self.lease = None\n",
            ),
        ),
    ),
    Mutant(
        "retention deletes the protected checkpoint",
        "Retention",
        "src/handgesture/checkpoints/run_folder.py",
        (edit("        keep |= self.retention.protected\n", ""),),
    ),
    Mutant(
        "a resume does not protect its checkpoint",
        "Retention",
        "src/handgesture/training/resume.py",
        (
            edit(
                "        run.retention.protected.add(checkpoint_uri.removeprefix(prefix))\n", "        pass\n"
            ),
        ),
    ),
    Mutant(
        "lineage without its parent",
        "Lineage",
        "src/handgesture/training/run.py",
        (
            edit(
                "Lineage(name, folder.uri, flow_run_id, parent,",
                "Lineage(name, folder.uri, flow_run_id, None,",
            ),
        ),
    ),
    Mutant(
        "a cache folder used without its sha256 check",
        "Crop cache",
        "src/handgesture/data/cache.py",
        (edit('sha256_file(path) != expected["sha256"]', "False"),),
    ),
    *(
        Mutant(
            f"handgesture {command} exits 1 on bad input",
            "Bad input",
            "handgesture_cli/main.py",
            (
                edit(
                    "        return report_error(exc)\n",
                    f"        return 1 if args.handler.__name__ == {command!r} else report_error(exc)\n",
                ),
            ),
        )
        for command in ("synth", "prepare", "train", "evaluate", "predict", "export", "inspect")
    ),
    Mutant(
        "every rank reads rank 0's slice",
        "Data-parallel",
        "src/handgesture/data/dataset.py",
        (edit("first = self.start + self.rank * size", "first = self.start"),),
    ),
    Mutant(
        "position counts one rank's samples",
        "Data-parallel",
        "src/handgesture/training/engine.py",
        (edit('int(batch["skipped"])) * world', 'int(batch["skipped"]))'),),
    ),
    Mutant(
        "interpolations accepted",
        "Parameters are data",
        "src/handgesture/config_checks.py",
        (
            edit(
                "        if _INTERPOLATION in value and key not in INTERPOLATION_ALLOWED:",
                "        if False:",
            ),
        ),
    ),
    Mutant(
        "configs resolved on their way into checkpoints",
        "Parameters are data",
        "src/handgesture/config.py",
        (
            edit(
                "    return dataclasses.asdict(config)",
                "    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)",
            ),
        ),
    ),
    Mutant(
        "a checkpoint's storage.uri taken",
        "Checkpoint configs decide",
        "src/handgesture/checkpoint_config.py",
        (edit('    "storage.uri": DROP,', '    "storage.uri": TAKE,'),),
    ),
    Mutant(
        "a checkpoint's whole config taken",
        "Checkpoint configs decide",
        "src/handgesture/checkpoint_config.py",
        (edit("        if CHECKPOINT_KEYS.get(dotted) == DROP:", "        if False:"),),
    ),
    Mutant(
        "a shared cache's samples not compared with ours",
        "Shared caches are checked",
        "src/handgesture/data/cache_check.py",
        (edit("    if theirs != ours:", "    if False:"),),
    ),
    Mutant(
        "a shared cache's settings not compared with ours",
        "Shared caches are checked",
        "src/handgesture/data/cache_check.py",
        (
            edit(
                'if not isinstance(index, dict) or index.get("settings") != settings:',
                "if not isinstance(index, dict):",
            ),
        ),
    ),
    Mutant(
        "image names outside the dataset accepted",
        "Shared caches are checked",
        "src/handgesture/data/annotations.py",
        (edit("if len(parts) != 2 or any(", "if False and any("),),
    ),
    Mutant(
        "dataset URIs read as folders",
        "Data paths are read",
        "src/handgesture/data/prepare.py",
        (edit("    check_data_keys(config)", "    pass"),),
    ),
    Mutant(
        "archive member path escape not checked",
        "Data in archives and S3",
        "src/handgesture/data/archives.py",
        (edit("    if escapes(info.filename):", "    if False:"),),
    ),
    Mutant(
        "cache key ignores a member's CRC-32",
        "Data in archives and S3",
        "src/handgesture/data/archives.py",
        (edit('return f"crc32:{self.crc:08x}:{self.size}"', 'return f"size:{self.size}"'),),
    ),
    Mutant(
        "a shard run again redoes its finished part",
        "Sharded prepare on Dask",
        "src/handgesture/data/shards.py",
        (
            edit(
                "    found = finished_part(shard.part, shard.key, shard.start, shard.stop)",
                "    found = None",
            ),
        ),
    ),
    Mutant(
        "a torn part taken as finished",
        "Sharded prepare on Dask",
        "src/handgesture/data/shards.py",
        (edit('            if _file_entry(part / name) != info["files"][name]:', "            if False:"),),
    ),
    Mutant(
        "a remote cluster's shards planned for one worker",
        "Sharded prepare on Dask",
        "flows/prepare.py",
        (edit("address=address), scheduler_slots(address)", "address=address), 1"),),
    ),
    Mutant(
        "an unlisted Dask scheduler used",
        "Dask schedulers are the machine's",
        "src/handgesture/config_checks.py",
        (edit("    if address not in dask_schedulers():", "    if False:"),),
    ),
    Mutant(
        "an S3 listing's later pages dropped",
        "Data in archives and S3",
        "src/handgesture/storage/s3.py",
        (
            edit(
                "            for page in pages:\n                found += [",
                '            for page in __import__("itertools").islice(pages, 1):\n'
                "                found += [",
            ),
        ),
    ),
    Mutant(
        "synthetic data written beside real images",
        "Data paths are read",
        "src/handgesture/data/prepare.py",
        (edit("        if _has_content(folder):", "        if False:"),),
    ),
    Mutant(
        "the default config generates data",
        "Data paths are read",
        "configs/default.yaml",
        (edit("generate_if_missing: false", "generate_if_missing: true "),),
    ),
    Mutant(
        "export writes inside a run folder",
        "Exports never destroy",
        "src/handgesture/export_target.py",
        (edit("    if record is not None:\n", "    if False:\n"),),
    ),
    Mutant(
        "export replaces an existing file without --force",
        "Exports never destroy",
        "src/handgesture/export_target.py",
        (edit("    if existing and not force:\n", "    if False:\n"),),
    ),
    Mutant(
        "export writes beside best.json",
        "Exports never destroy",
        "src/handgesture/export_target.py",
        (edit("    if (folder / POINTER).exists():\n", "    if False:\n"),),
    ),
    Mutant(
        "--force replaces a file that is not our export",
        "Exports never destroy",
        "src/handgesture/export_target.py",
        (
            edit(
                'return weights.get("exported_by") == EXPORTED_BY and "optimizer_state_dict" not in weights',
                "return True",
            ),
        ),
    ),
    Mutant(
        "NaN logits pass the export check",
        "Exports never destroy",
        "src/handgesture/export.py",
        (edit("    diff, tolerance = _worst(diffs),", "    diff, tolerance = max([0.0, *diffs]),"),),
    ),
    Mutant(
        "best pointer's sha256 not checked against the file",
        "Best pointer and promotion",
        "src/handgesture/checkpoints/locate.py",
        (edit("    expected = pinned.sha256 if pinned else recorded\n", "    expected = recorded\n"),),
    ),
    Mutant(
        "a pointer without a sha256 accepted",
        "Best pointer and promotion",
        "src/handgesture/checkpoints/best.py",
        (edit("    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):\n", "    if False:\n"),),
    ),
    Mutant(
        "promotion not re-decided against a moved pointer",
        "Best pointer and promotion",
        "src/handgesture/promotion.py",
        (edit("        if latest != incumbent:", "        if False:"),),
    ),
    Mutant(
        "pointer written unconditionally",
        "Best pointer and promotion",
        "src/handgesture/checkpoints/best.py",
        (
            edit(
                "    return store.replace_if(data, POINTER, version)\n",
                "    store.put_bytes(data, POINTER)\n    return True\n",
            ),
        ),
    ),
    Mutant(
        "checkpoint member sizes not checked",
        "Safe load",
        "src/handgesture/checkpoints/format.py",
        (edit("    check_member_sizes(_declared_sizes(data, source), source)\n", "    pass\n"),),
    ),
    Mutant(
        "a malformed lease read as it is",
        "One writer per run folder",
        "src/handgesture/checkpoints/lease.py",
        (
            edit(
                "        holder, version = parse_lease(found[0], self.store.uri(LEASE)), found[1]\n",
                "        holder, version = json.loads(found[0]), found[1]\n",
            ),
        ),
    ),
    Mutant(
        "staleness judged by the taker's ttl",
        "One writer per run folder",
        "src/handgesture/checkpoints/lease.py",
        (
            edit(
                '        ttl = min(holder.get("ttl", self.ttl), MAX_TTL)\n',
                "        ttl = min(self.ttl, MAX_TTL)\n",
            ),
        ),
    ),
    Mutant(
        "a lease's ttl not clamped",
        "One writer per run folder",
        "src/handgesture/checkpoints/lease.py",
        (
            edit(
                '        ttl = min(holder.get("ttl", self.ttl), MAX_TTL)\n',
                '        ttl = holder.get("ttl", self.ttl)\n',
            ),
        ),
    ),
    Mutant(
        "a renewal in the future kept",
        "One writer per run folder",
        "src/handgesture/checkpoints/lease.py",
        (edit(' or holder["renewed_at"] - self.clock() > ttl:', ":"),),
    ),
    Mutant(
        "a boolean taken as a box coordinate",
        "Bad input",
        "src/handgesture/prediction.py",
        (edit("all(_coordinate(v) for v in box)", "all(isinstance(v, int | float) for v in box)"),),
    ),
    Mutant(
        "deeply nested annotations a traceback",
        "Bad input",
        "src/handgesture/data/annotations.py",
        (
            edit(
                "    except RecursionError:  # the decoder recurses once per level of nesting",
                "    except ZeroDivisionError:",
            ),
        ),
    ),
    Mutant(
        "more CPU ranks than cores",
        "Launch and sweep limits",
        "src/handgesture/training/distributed.py",
        (
            edit(
                "    elif count > (cores := usable_cores()):",
                "    elif count < 0 and (cores := usable_cores()):",
            ),
        ),
    ),
    Mutant(
        "a rung-controlled key searched",
        "Launch and sweep limits",
        "src/handgesture/sweep.py",
        (edit('        _check_not_rung_controlled(key, f"search space key {key!r}")', "        pass"),),
    ),
    Mutant(
        "survivors rounded down",
        "Launch and sweep limits",
        "src/handgesture/sweep.py",
        (edit("max(1, math.ceil(len(runs) * keep))", "max(1, int(len(runs) * keep))"),),
    ),
    Mutant(
        "halving goes on past a failed rung",
        "Launch and sweep limits",
        "src/handgesture/sweep.py",
        (edit("        if not live:", "        if False:"),),
    ),
    Mutant(
        "a schedule replayed from the epoch's start",
        "Exact resume mid-epoch",
        "src/handgesture/training/state.py",
        (
            edit(
                "step = progress.epoch * self.steps_per_epoch + progress.position // self.global_batch",
                "step = progress.epoch * self.steps_per_epoch",
            ),
        ),
    ),
    Mutant(
        "the train task resolves the resume request again",
        "One start point",
        "src/handgesture/training/resume.py",
        (
            edit(
                "    opened = open_start(resume, s3)\n",
                "    opened = resolve_checkpoint(resume.request, s3)\n",
            ),
        ),
    ),
    Mutant(
        "a start point's file loaded without its sha256",
        "One start point",
        "src/handgesture/checkpoints/start.py",
        (edit("sha256=start.sha256, pinned_by=", "pinned_by="),),
    ),
    Mutant(
        "a given validation split replaced by the person split",
        "v2's validation split is used as given",
        "src/handgesture/data/loaders.py",
        (edit('    if "val" not in prepared.splits:\n', "    if True:\n"),),
    ),
    Mutant(
        "full frame: the first label taken, no_gesture or not",
        "Full-frame classification",
        "src/handgesture/data/full_frames.py",
        (
            edit(
                "    return next((label for label in labels if label != NO_GESTURE), None)\n",
                "    return next(iter(labels), None)\n",
            ),
        ),
    ),
    Mutant(
        "plateau/early-stopping resume: the plateau's position dropped",
        "Early stopping and plateau schedules resume exactly",
        "src/handgesture/training/state.py",
        (edit("            self.restore_plateau,\n", ""),),
    ),
    Mutant(
        "plateau/early-stopping resume: the rule's state dropped",
        "Early stopping and plateau schedules resume exactly",
        "src/handgesture/training/state.py",
        (edit("            self.restore_early_stopping,  # after the progress", "            # "),),
    ),
    Mutant(
        "a v2 snapshot's next epoch is EPOCHS_RUN (v2's own loop, training it twice)",
        "HaGRID v2 snapshots both ways",
        "src/handgesture/checkpoints/hagrid_v2.py",
        (
            edit(
                "    epoch = _epochs_run(checkpoint, source) + 1\n",
                "    epoch = _epochs_run(checkpoint, source)\n",
            ),
        ),
    ),
    Mutant(
        "MODEL_STATE stored as a copy of our tensors",
        "HaGRID v2 snapshots both ways",
        "src/handgesture/full_frame.py",
        (
            edit(
                "{WRAPPER + key: tensor for key, tensor in",
                "{WRAPPER + key: tensor.clone() for key, tensor in",
            ),
        ),
    ),
    Mutant(
        "a config file's refusals reported one at a time",
        "HaGRID's config files run as given",
        "src/handgesture/config.py",
        (
            edit(
                """        raise ConfigError(f"invalid config from {source}: {'; '.join(refused)}")""",
                """        raise ConfigError(f"invalid config from {source}: {refused[0]}")""",
            ),
        ),
    ),
    Mutant(
        "per-group predictions matched to samples by order, not by index",
        "Fair evaluation",
        "src/handgesture/fairness.py",
        (
            edit(
                '        self.indices.append(batch["index"].cpu())\n',
                "        self.indices.append(torch.arange(len(batch['index']))"
                " + sum(map(len, self.indices)))\n",  # the n-th row is taken for the n-th sample
            ),
        ),
    ),
    Mutant(
        "the widest gap's highest group picked by count, not F1",
        "Fair evaluation",
        "src/handgesture/fairness.py",
        (
            edit(
                '    highest = max(rows, key=lambda row: row["f1_score"])\n',
                '    highest = max(rows, key=lambda row: row["count"])\n',
            ),
        ),
    ),
]
BASELINE = Mutant("no change", "", "", ())


def guarantee_rows(readme: Path) -> dict[str, list[str]]:
    """The Guarantees table's rows: first cell -> the tests it names (`::name` continues the last file)."""
    table = readme.read_text().split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[1].count("`"):
            continue
        tests, last_file = [], None
        for item in re.findall(r"`([^`]+)`", cells[1]):
            if item.startswith("tests/"):
                last_file = item.split("::")[0]
                tests.append(item)
            elif item.startswith("::") and last_file:
                tests.append(last_file + item)
        rows[cells[0]] = tests
    return rows


def tests_of(row: str, rows: dict[str, list[str]]) -> list[str]:
    found = [tests for title, tests in rows.items() if title.startswith(row)]
    if len(found) != 1 or not found[0]:
        raise SystemExit(f"no single Guarantees row begins with {row!r} and names tests")
    return found[0]


def copy_tree(destination: Path) -> Path:
    """The repository's files as git sees them (tracked and untracked, not ignored) in `destination`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def apply(mutant: Mutant, tree: Path) -> None:
    if not mutant.edits:
        return
    path = tree / mutant.path
    text = path.read_text()
    for old, new in mutant.edits:
        if text.count(old) != 1:
            raise SystemExit(
                f"mutant {mutant.name!r}: {old!r} occurs {text.count(old)} times in {mutant.path}"
            )
        text = text.replace(old, new)
    path.write_text(text)


def run(mutant: Mutant, tests: list[str]) -> tuple[str, float, str]:
    """'killed', 'survived', or 'error: ...' (the tests could not run), the seconds it took, and which
    tests failed."""
    with tempfile.TemporaryDirectory(prefix="handgesture-mutant-") as tmp:
        tree = copy_tree(Path(tmp))
        apply(mutant, tree)
        env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}  # the copy, not the install
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--timeout=600", *tests],
            cwd=tree, env=env, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.monotonic() - start
    if done.returncode == 0:
        return "survived", seconds, ""
    if done.returncode == 1:
        return "killed", seconds, failures(done.stdout)
    return f"error (pytest exit {done.returncode}): {done.stdout[-300:]}", seconds, failures(done.stdout)


def failures(output: str) -> str:
    """pytest's short summary lines: which tests failed."""
    return "\n".join(line for line in output.splitlines() if line.startswith(("FAILED", "ERROR")))


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the mutants whose name contains this")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = parser.parse_args()
    rows = guarantee_rows(ROOT / "docs/guarantees.md")
    uncovered = [row for row in rows if not any(row.startswith(m.row) for m in MUTANTS)]
    if uncovered:
        raise SystemExit(f"Guarantees rows without a mutant: {uncovered}")
    chosen = [m for m in MUTANTS if not args.only or args.only in m.name]
    start = time.monotonic()
    baseline_failure = check_baseline(chosen, rows)
    if baseline_failure:
        print(baseline_failure, file=sys.stderr)
        return 2
    results = []
    for mutant in chosen:
        if mutant.needs == "cuda" and not cuda_available():
            results.append((mutant, "skipped (needs CUDA)", 0.0))
        else:
            results.append((mutant, *run(mutant, tests_of(mutant.row, rows))[:2]))
        print(f"{results[-1][1]:>10}  {results[-1][2]:6.1f} s  {mutant.name}", flush=True)
    total = time.monotonic() - start
    print_table(results, total, args.markdown)
    bad = [m.name for m, outcome, _ in results if outcome == "survived" or outcome.startswith("error")]
    if bad:
        print(f"\n{len(bad)} mutants not killed: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


def check_baseline(chosen: list[Mutant], rows: dict[str, list[str]]) -> str | None:
    """A mutant counts as killed only if its tests pass without it: run them all once, unchanged, first."""
    tests = list(dict.fromkeys(test for m in chosen for test in tests_of(m.row, rows)))
    outcome, seconds, failed = run(BASELINE, tests)
    print(f"{'baseline':>10}  {seconds:6.1f} s  the named tests on the unchanged tree", flush=True)
    if outcome == "survived":  # nothing changed, and the tests pass: as it must be
        return None
    return (
        f"the named tests fail on the unchanged tree; fix them before judging mutants:\n{failed or outcome}"
    )


def print_table(results, total: float, markdown: bool) -> None:
    lines = ["| mutant | guarantee row | result | seconds |", "| --- | --- | --- | --- |"]
    lines += [f"| {m.name} | {m.row} | {outcome} | {seconds:.1f} |" for m, outcome, seconds in results]
    killed = sum(outcome == "killed" for _, outcome, _ in results)
    lines.append(f"\n{killed} of {len(results)} killed in {total:.0f} s")
    print(
        "\n" + "\n".join(lines if markdown else [line.replace("| ", "").replace(" |", "") for line in lines])
    )


if __name__ == "__main__":
    raise SystemExit(main())
