"""The epoch relay: rank 0's epoch ends, written to files, reach the caller's on_epoch once each, in order."""

import contextvars
import logging
import threading
import time

from handgesture.training.engine import Progress
from handgesture.training.epoch_relay import EpochRelay, epoch_writer

RUN_CONTEXT = contextvars.ContextVar("run_context")  # stands for Prefect's task run context


def wait_for(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_epoch_ends_reach_on_epoch_while_running_and_the_last_before_close(tmp_path):
    passed, caller = [], threading.get_ident()
    RUN_CONTEXT.set("the train task's")

    def on_epoch(progress, metrics):
        passed.append((progress, metrics, threading.get_ident(), RUN_CONTEXT.get(None)))

    write = epoch_writer(tmp_path)
    with EpochRelay(tmp_path, on_epoch):
        write(Progress(epoch=1, global_step=4, history=[{"epoch": 1, "f1": 0.5}]), {"f1": 0.5})
        assert wait_for(lambda: len(passed) == 1), "epoch 1 was not passed on while the launch ran"
        write(Progress(epoch=2, global_step=8), {"f1": 0.6})  # just before the launch returns
        write(Progress(epoch=3, global_step=12), {"f1": 0.7})
    got = [(p.epoch, p.global_step, m) for p, m, _, _ in passed]
    assert got == [(1, 4, {"f1": 0.5}), (2, 8, {"f1": 0.6}), (3, 12, {"f1": 0.7})]
    assert passed[0][0].history == [{"epoch": 1, "f1": 0.5}]
    assert passed[0][2] != caller and passed[0][3] == "the train task's"  # its thread, the caller's context


def test_a_failing_on_epoch_is_logged_and_the_relay_goes_on(tmp_path, caplog):
    seen = []

    def on_epoch(progress, metrics):
        seen.append(progress.epoch)
        if progress.epoch == 1:
            raise RuntimeError("the API is down")

    write = epoch_writer(tmp_path)
    with caplog.at_level(logging.WARNING), EpochRelay(tmp_path, on_epoch):
        write(Progress(epoch=1), {})
        write(Progress(epoch=2), {})
    assert seen == [1, 2]
    assert "on_epoch failed for epoch 1: the API is down" in caplog.text


def test_without_on_epoch_nothing_runs(tmp_path):
    with EpochRelay(tmp_path, None) as relay:
        epoch_writer(tmp_path)(Progress(epoch=1), {})
    assert not relay._thread.is_alive() and relay._thread.ident is None
