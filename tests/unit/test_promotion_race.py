"""Promotion is compare-and-swap: two promotions from the same (stale) read of the best pointer never both
win, and the pointer's `previous` always names the pointer it replaced. Local folder and S3 (moto_server).

Scores are fixed per checkpoint (no training): `contest` is what promote() runs once both models are scored.
"""

import hashlib
import json

import pytest

from handgesture.checkpoints.best import POINTER, read_best
from handgesture.promotion import Evaluation, PromotionError, contest
from handgesture.storage import S3Settings, open_store

RECORD = {"split": {"random_state": 42}, "flow_run_id": None}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def experiment(request, tmp_path):
    """The experiment's store and how to reach it: (store, s3 settings)."""
    if request.param == "local":
        return open_store(str(tmp_path / "runs" / "demo")), None
    server, bucket = request.getfixturevalue("s3_env"), request.getfixturevalue("s3_bucket")
    s3 = S3Settings(endpoint_url=server.endpoint_url)
    return open_store(f"s3://{bucket}/runs/demo", s3), s3


class Scores:
    """A fake evaluation: a fixed validation F1 per run; records which checkpoints were evaluated."""

    def __init__(self, store, **f1):
        self.uris = {run: store.uri(f"{run}/checkpoints/e0001-s00000001.pth") for run in f1}
        self.f1 = {self.uris[run]: value for run, value in f1.items()}
        self.seen: list[str] = []

    def __call__(self, uri: str) -> Evaluation:
        self.seen.append(uri)
        return Evaluation({"val": self.f1[uri]}, hashlib.sha256(uri.encode()).hexdigest())


def _promote(experiment, scores, run, current, min_improvement=0.0):
    store, s3 = experiment
    return contest(store, scores.uris[run], current, scores, min_improvement, RECORD, s3)


def _pointer(experiment) -> dict:
    store, s3 = experiment
    return read_best(store, s3)


@pytest.mark.parametrize(("second", "wins"), [(0.7, True), (0.5, False)])
def test_two_promotions_from_the_same_stale_read_never_both_win(experiment, second, wins):
    scores = Scores(experiment[0], a=0.6, b=second)
    stale = _pointer(experiment)  # both retrains read "no best yet"
    assert stale is None
    assert _promote(experiment, scores, "a", stale)[0]
    promoted, reason, incumbent = _promote(experiment, scores, "b", stale)
    assert incumbent == scores.uris["a"]  # decided again, against the model promoted in between
    assert promoted is wins and ("0.6000" in reason)
    pointer = _pointer(experiment)
    if wins:
        assert pointer["checkpoint"] == scores.uris["b"] and pointer["previous"] == scores.uris["a"]
    else:
        assert pointer["checkpoint"] == scores.uris["a"] and pointer["previous"] is None


def test_a_promotion_losing_the_race_between_its_read_and_its_write_decides_again(experiment, monkeypatch):
    store, s3 = experiment
    scores = Scores(store, x=0.5, a=0.6, b=0.7)
    _promote(experiment, scores, "x", None)
    both_read = _pointer(experiment)
    real = store.replace_if
    raced = []

    def a_wins_in_between(data, key, version):
        if not raced:  # b has read the pointer (its version) and now writes; a's write lands first
            raced.append(None)
            raced[0] = _promote(experiment, scores, "a", both_read)
        return real(data, key, version)

    monkeypatch.setattr(store, "replace_if", a_wins_in_between)
    promoted, _, incumbent = _promote(experiment, scores, "b", both_read)
    assert raced[0][0] and raced[0][2] == scores.uris["x"]  # a beat x and replaced it
    assert promoted and incumbent == scores.uris["a"]  # b's first write was refused; it then beat a
    pointer = _pointer(experiment)
    assert pointer["checkpoint"] == scores.uris["b"] and pointer["previous"] == scores.uris["a"]
    assert pointer["sha256"] == hashlib.sha256(scores.uris["b"].encode()).hexdigest()


def test_a_first_promotion_racing_another_first_one_decides_again(experiment, monkeypatch):
    store, _ = experiment
    scores = Scores(store, a=0.6, b=0.5)
    real = store.create_exclusive
    raced = []

    def a_creates_it_first(data, key):
        if not raced:
            raced.append(None)
            raced[0] = _promote(experiment, scores, "a", None)
        return real(data, key)

    monkeypatch.setattr(store, "create_exclusive", a_creates_it_first)
    promoted, _, incumbent = _promote(experiment, scores, "b", None)
    assert not promoted and incumbent == scores.uris["a"]
    assert _pointer(experiment)["checkpoint"] == scores.uris["a"]


def test_an_incumbent_whose_file_is_not_the_promoted_one_is_refused(experiment):
    store, _ = experiment
    scores = Scores(store, a=0.6, b=0.7)
    _promote(experiment, scores, "a", None)
    pointer = _pointer(experiment)
    store.put_bytes(json.dumps({**pointer, "sha256": "0" * 64}).encode(), POINTER)
    with pytest.raises(PromotionError, match="0{64}"):
        _promote(experiment, scores, "b", _pointer(experiment))
