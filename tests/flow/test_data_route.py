"""One data route per run: the prepare-data task reads the annotations and keys the caches once, and the
train and promote tasks open what it prepared; a retrain reads the best pointer once, and promotion builds
the validation split only."""

from collections import Counter

import pytest

import handgesture.checkpoints.best
import handgesture.data.cache
import handgesture.data.loaders
import handgesture.data.prepare
from tests.tiny import tiny_dotlist

pytestmark = pytest.mark.slow


@pytest.fixture
def calls(monkeypatch):
    """Counts calls of the expensive steps (module globals, so every caller in the process is seen)."""
    counted: Counter = Counter()

    def count(module, name, key=None):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            counted[key(*args, **kwargs) if key else name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    count(handgesture.data.prepare, "read_annotations")
    count(handgesture.data.cache, "cache_key")
    count(handgesture.checkpoints.best, "read_pointer")
    loader_kind = lambda *a, drop_last=False, **k: "train loader" if drop_last else "eval loader"  # noqa: E731
    count(handgesture.data.loaders, "make_loader", key=loader_kind)
    return counted


@pytest.fixture
def params(tiny_dataset, tmp_path):
    overrides = [*tiny_dotlist(tiny_dataset), "train_params.epochs=1", "tracking.tensorboard=false"]
    overrides.append(f"dataset.cache_dir={tmp_path / 'cache'}")  # a cache this test prepares itself
    return {"config": "configs/demo.yaml", "overrides": overrides, "storage": str(tmp_path / "runs")}


def test_a_training_flow_reads_and_keys_its_data_once(prefect_harness, calls, params):
    from flows.train import train_hand_gesture_classifier

    train_hand_gesture_classifier(**params)
    assert calls["read_annotations"] == 1 and calls["cache_key"] == 1
    assert calls["train loader"] == 1 and calls["eval loader"] == 1


def test_a_retrain_reads_the_best_pointer_once_and_promotion_builds_validation_only(
    prefect_harness, calls, params
):
    from flows.retrain import retrain_hand_gesture_classifier

    first = retrain_hand_gesture_classifier(**params)
    assert first.promotion.promoted and first.promotion.incumbent is None
    calls.clear()
    second = retrain_hand_gesture_classifier(**params)
    assert second.run.resumed_from == first.run.best_checkpoint  # fine-tuned from the current best
    assert second.promotion.incumbent == first.run.best_checkpoint
    assert calls["read_pointer"] == 1
    assert calls["read_annotations"] == 1 and calls["cache_key"] == 1
    # The train task's training and validation loaders, and promotion's one validation loader.
    assert calls["train loader"] == 1 and calls["eval loader"] == 2
