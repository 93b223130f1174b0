"""The best pointer: promotion both ways on one split, and resume from `<storage>/<experiment>/best`."""

import json

import pytest

from handgesture.checkpoints.best import best_ref
from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.errors import CheckpointError
from handgesture.promotion import decide, promote, promote_if_better
from handgesture.training import run_training

pytestmark = pytest.mark.slow


def test_decide_needs_a_strict_win_by_the_margin():
    assert decide(0.5, None) == (True, "no current best: the first model is promoted")
    assert decide(0.6, 0.5)[0] and not decide(0.5, 0.5)[0] and not decide(0.4, 0.5)[0]
    assert not decide(0.55, 0.5, min_improvement=0.1)[0]


def test_promotion_both_ways_and_resume_from_the_current_best(tiny_config, tmp_path):
    weak = run_training(tiny_config("train_params.epochs=1", "optimizer.lr=0.0001"), run_name="weak")
    cfg = tiny_config("train_params.epochs=2", "checkpoint.resume_mode=finetune")
    ref = best_ref(cfg.storage.uri, cfg.storage.experiment)
    with pytest.raises(CheckpointError, match="no best model has been promoted"):
        resolve_checkpoint(ref)

    first = promote_if_better(cfg, weak.best_checkpoint)
    assert first.promoted and first.incumbent is None
    # Re-evaluation on the same split reproduces the metric the run recorded for its best checkpoint.
    assert first.challenger_metric == pytest.approx(weak.best_metric)
    assert resolve_checkpoint(ref).uri == weak.best_checkpoint

    better = run_training(cfg, resume=ref, run_name="better")
    assert better.resumed_from == weak.best_checkpoint
    decision = promote_if_better(cfg, better.best_checkpoint)
    assert decision.promoted and decision.incumbent == weak.best_checkpoint
    pointer_path = tmp_path / "runs" / "demo" / "best.json"
    pointer = json.loads(pointer_path.read_text())
    assert pointer["checkpoint"] == better.best_checkpoint and pointer["previous"] == weak.best_checkpoint

    worse_cfg = tiny_config("train_params.epochs=1", "optimizer.lr=2", "checkpoint.resume_mode=finetune")
    worse = run_training(worse_cfg, resume=ref, run_name="worse")
    decision = promote_if_better(worse_cfg, worse.best_checkpoint)
    assert not decision.promoted and decision.challenger_metric < decision.incumbent_metric
    assert json.loads(pointer_path.read_text()) == pointer


def test_a_pointer_whose_checkpoint_changed_is_refused(tiny_config, tmp_path):
    cfg = tiny_config("train_params.epochs=1")
    run = run_training(cfg, run_name="only")
    promote_if_better(cfg, run.best_checkpoint)
    pointer_path = tmp_path / "runs" / "demo" / "best.json"
    pointer = json.loads(pointer_path.read_text())
    pointer_path.write_text(json.dumps({**pointer, "sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match="run manifest now records"):
        resolve_checkpoint(best_ref(cfg.storage.uri, cfg.storage.experiment))


def test_two_promotions_from_one_stale_read_never_both_win(tiny_config, tmp_path):
    cfg = tiny_config("train_params.epochs=1")
    first = run_training(cfg, run_name="first")
    second = run_training(tiny_config("train_params.epochs=1", "optimizer.lr=0.0001"), run_name="second")
    stale = None  # both retrains read the pointer before either promoted
    assert promote(cfg, first.best_checkpoint, stale).promoted
    decision = promote(cfg, second.best_checkpoint, stale)
    assert decision.incumbent == first.best_checkpoint  # decided again, against the model promoted first
    pointer = json.loads((tmp_path / "runs" / "demo" / "best.json").read_text())
    if decision.promoted:
        assert pointer["checkpoint"] == second.best_checkpoint
        assert pointer["previous"] == first.best_checkpoint
    else:
        assert pointer["checkpoint"] == first.best_checkpoint
