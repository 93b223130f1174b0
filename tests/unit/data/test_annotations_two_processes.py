"""A large folder's gesture files read in two processes (`index_halves`, `index_fork`): with the size
threshold lowered, small folders take that path, and all comes out as one process reading them gives."""

import json
import logging
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from handgesture.data import index_halves
from handgesture.data.annotations import read_annotations
from handgesture.data.index_samples import Tally
from handgesture.data.synthetic import generate_synthetic
from handgesture.errors import DataError
from handgesture.labels import HAGRID_TARGETS, HAGRID_V2_TARGETS
from tests.unit.data.test_annotations import _entry, write_dataset

GESTURES = ["call", "fist", "like", "one", "palm", "peace", "stop"]
TARGETS = [*GESTURES, "no_gesture"]


@pytest.fixture
def outcomes(monkeypatch) -> list[bool]:
    """Every folder read in two processes from here on; each read's outcome: True when the child's result
    was used, False when this process read the child's files itself."""
    monkeypatch.setattr(index_halves, "FORK_MIN_BYTES", 0)
    monkeypatch.setattr(index_halves, "_usable_cores", lambda: 2)  # the path is taken on one core too
    seen, decoded = [], index_halves._decoded

    def spy(payload, pid):
        part = decoded(payload, pid)
        seen.append(part is not None)
        return part

    monkeypatch.setattr(index_halves, "_decoded", spy)
    return seen


def _read(ann, data, targets, caplog, **kwargs):
    """(samples, sizes, missing, notes, logged messages), or (error type, message, logged messages)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        try:
            found = read_annotations(ann, data, targets, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the error is part of what must match
            return type(exc), str(exc), caplog.messages[:]
    return found.samples, list(found.sizes), found.missing_images, found.notes, caplog.messages[:]


def _both_ways(monkeypatch, ann, data, targets, caplog, **kwargs):
    """The read with the threshold as the test set it, then in one process (the threshold out of reach)."""
    two = _read(ann, data, targets, caplog, **kwargs)
    monkeypatch.setattr(index_halves, "FORK_MIN_BYTES", 2**62)
    return two, _read(ann, data, targets, caplog, **kwargs)


def _gesture_files(skipped_in: set[str] = frozenset()) -> dict:
    """A file per gesture, several images each; in ``skipped_in``: a box outside its frame, a box with an
    unknown label (a new one per file, so the tally's order across the two processes shows), no_gesture."""
    files = {}
    for n, gesture in enumerate(GESTURES):
        entries = {f"{gesture}-{i:02d}": _entry([[0.1, 0.1, 0.3, 0.3]], [gesture], user=f"u{i % 3}")
                   for i in range(8)}  # fmt: skip
        if gesture in skipped_in:
            boxes = [[0.1, 0.1, 0.2, 0.2], [1.5, 0.1, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1], [0, 0, 0.1, 0.1]]
            labels = [gesture, gesture, f"mystery{n % 2}", "no_gesture"]
            entries[f"{gesture}-zz"] = _entry(boxes, labels, "left", "u9")
        files[gesture] = entries
    return files


def test_a_folder_read_in_two_is_the_folder_read_in_one(tmp_path, monkeypatch, caplog, outcomes):
    ann, data = write_dataset(tmp_path, _gesture_files({"fist", "one", "peace", "stop"}))
    for image in ("fist/fist-03.jpg", "stop/stop-00.jpg"):
        (data / image).unlink()
    (ann / "palm.json").write_text(json.dumps(_gesture_files()["palm"], indent=1))  # read by the checked path
    two, one = _both_ways(monkeypatch, ann, data, TARGETS, caplog)
    assert two == one and outcomes == [True]
    samples, sizes, missing, notes, logged = two
    assert missing == 2 and len(sizes) == len(samples) and len(notes) == 2
    skipped = [message.split(": ")[-1] for message in logged[:4]]
    assert skipped == ["1 boxes outside their frame or empty were skipped"] * 4
    # mystery1 first seen in this process's files (and in the child's), mystery0 only in the child's
    assert logged[-1].endswith("{'mystery1': 3, 'mystery0': 1}")


@pytest.mark.parametrize("full_frame", [False, True])
@pytest.mark.parametrize("split", ["annotations", "val_annotations", "test_annotations"])
def test_a_v2_split_read_in_two_is_the_split_read_in_one(
    tmp_path, monkeypatch, caplog, outcomes, full_frame, split
):
    info = generate_synthetic(tmp_path, per_class=4, users=3, version=2, targets=HAGRID_V2_TARGETS)
    for image in sorted(Path(info["dataset"]).rglob("*.jpg"))[::7]:
        image.unlink()
    ann, data = info[split], info["dataset"]
    two, one = _both_ways(monkeypatch, ann, data, HAGRID_V2_TARGETS, caplog, full_frame=full_frame)
    assert two == one and outcomes == [True]
    assert two[2] > 0 and len(two[0]) > 0


def test_a_v1_folder_read_in_two_is_the_folder_read_in_one(tmp_path, monkeypatch, caplog, outcomes):
    info = generate_synthetic(tmp_path, per_class=5, users=4, version=1)
    two, one = _both_ways(monkeypatch, info["annotations"], info["dataset"], HAGRID_TARGETS, caplog, subset=3)
    assert two == one and outcomes == [True]


def test_an_error_in_the_childs_files_is_the_error_one_process_meets(tmp_path, monkeypatch, caplog, outcomes):
    ann, data = write_dataset(tmp_path, _gesture_files({"peace"}))
    (ann / "stop.json").write_text('{"stop-00": [1]}')  # the last file: always the child's
    two, one = _both_ways(monkeypatch, ann, data, TARGETS, caplog)
    assert two == one and outcomes == [False]
    assert two[0] is DataError and "stop.json" in two[1] and "expected an object, got list" in two[1]
    assert len(two[2]) == 1 and "peace.json" in two[2][0]  # the warning of a file read before it


def test_an_error_in_both_groups_is_the_first_files(tmp_path, monkeypatch, caplog, outcomes):
    ann, data = write_dataset(tmp_path, _gesture_files())
    (ann / "call.json").write_text("{not json")
    (ann / "stop.json").write_text('{"stop-00": [1]}')
    two, one = _both_ways(monkeypatch, ann, data, TARGETS, caplog)
    assert two == one and outcomes == []  # the child was stopped, its result never read
    assert two[0] is DataError and "call.json" in two[1] and "invalid JSON" in two[1]


def _exit_at_once(*args):
    os._exit(1)


def _killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)


def _garbage(*args):
    return b"\x93not a result"


@pytest.mark.parametrize("child", [_exit_at_once, _killed, _garbage])
def test_a_child_that_fails_leaves_its_files_to_this_process(tmp_path, monkeypatch, caplog, outcomes, child):
    ann, data = write_dataset(tmp_path, _gesture_files({"call", "stop"}))
    monkeypatch.setattr(index_halves, "_read_encoded", child)
    two, one = _both_ways(monkeypatch, ann, data, TARGETS, caplog)
    assert two == one and outcomes == [False]
    assert len(two[0]) == len(GESTURES) * 8 + 2 * 2  # two files with a kept box and a no_gesture box more


def test_a_failing_read_here_stops_and_reaps_the_child(tmp_path, monkeypatch, outcomes):
    ann, data = write_dataset(tmp_path, _gesture_files())
    (ann / "call.json").write_text("{not json")
    pids, forked = [], index_halves.Forked

    def recorded(work):
        child = forked(work)
        pids.append(child.pid)
        return child

    monkeypatch.setattr(index_halves, "Forked", recorded)
    open_before = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(DataError, match="invalid JSON"):
        read_annotations(ann, data, TARGETS)
    assert len(pids) == 1
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(pids[0], os.WNOHANG)
    assert sorted(os.listdir("/proc/self/fd")) == open_before


def test_a_fork_that_fails_leaves_all_the_files_to_this_process(tmp_path, monkeypatch, caplog, outcomes):
    ann, data = write_dataset(tmp_path, _gesture_files({"call", "stop"}))

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    open_before = sorted(os.listdir("/proc/self/fd"))
    two, one = _both_ways(monkeypatch, ann, data, TARGETS, caplog)
    assert two == one and outcomes == []
    assert sorted(os.listdir("/proc/self/fd")) == open_before


def test_small_folders_are_read_in_one_process(tmp_path, monkeypatch):
    ann, data = write_dataset(tmp_path, _gesture_files())
    monkeypatch.setattr(index_halves, "Forked", None)  # a fork would fail
    assert len(read_annotations(ann, data, TARGETS).samples) == len(GESTURES) * 8


def test_the_files_are_cut_where_the_bytes_are_most_even():
    assert index_halves._balanced_cut([54, 54, 35, 10]) == 1
    assert index_halves._balanced_cut([10, 10, 10, 10]) == 2
    assert index_halves._balanced_cut([1, 1, 100]) == 2
    assert index_halves._balanced_cut([100, 1]) == 1


def test_a_merged_tally_is_one_tally_over_both_groups():
    first = Tally(2, Counter({"a.json": 1}), Counter({"x": 1, "y": 2}), 1, Counter({"like": 1}))
    later = Tally(3, Counter({"b.json": 2}), Counter({"z": 1, "x": 4}), 0, Counter({"fist": 2}))
    first.merge(later)
    assert first == Tally(5, Counter({"a.json": 1, "b.json": 2}), Counter({"x": 5, "y": 2, "z": 1}), 1,
                          Counter({"like": 1, "fist": 2}))  # fmt: skip
    assert list(first.unknown_labels) == ["x", "y", "z"]
