"""`dataset.val_annotations`: HaGRID v2's validation split used as given (prepared, trained, evaluated and
promoted on), and the person split of the training annotations without it."""

import logging
import math

import pytest
import torch

from handgesture.config import load_config
from handgesture.data import loaders
from handgesture.data.annotations import image_name, read_annotations, split_by_user
from handgesture.data.loaders import build_data, build_val_batches
from handgesture.data.prepare import prepare_data
from handgesture.data.synthetic import generate_synthetic
from handgesture.evaluation import evaluate_checkpoint, evaluation_plan
from handgesture.promotion import evaluator
from handgesture.training import run_training
from tests.tiny import tiny_dotlist

TARGETS = ["hand_heart", "like", "no_gesture"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def v2_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2-splits")
    return generate_synthetic(
        root / "data", per_class=8, targets=TARGETS, users=3, frame_size=(96, 64), seed=11, version=2
    )


@pytest.fixture
def config_of(v2_data, tmp_path):
    def make(*overrides: str):
        base = [*tiny_dotlist(v2_data), f"dataset.targets=[{','.join(TARGETS)}]", "train_params.epochs=1"]
        base += [f"dataset.cache_dir={tmp_path / 'cache'}", f"storage.uri={tmp_path / 'runs'}"]
        return load_config("configs/demo.yaml", [*base, "train_params.train_batch_size=8", *overrides])

    return make


def _keys(samples) -> list:
    return [(image_name(s.image), s.box, s.gesture, s.user_id) for s in samples]


def _folder(data: dict, key: str) -> list:
    return _keys(read_annotations(data[key], data["dataset"], TARGETS).samples)


def test_the_given_validation_split_is_exactly_its_folder(v2_data, config_of):
    config = config_of(f"dataset.val_annotations={v2_data['val_annotations']}")
    prepared = prepare_data(config)
    assert sorted(prepared.splits) == ["train", "val"] and prepared.splits["val"].cache  # cached like train
    bundle = build_data(config, CPU, prepared)
    assert _keys(bundle.val_batches().dataset.samples) == _folder(v2_data, "val_annotations")
    assert bundle.train_size == len(_folder(v2_data, "annotations"))  # all of train: nobody is held out
    # evaluate --split val and promotion read the validation split through build_val_batches
    assert _keys(build_val_batches(config, CPU, prepared)().dataset.samples) == _folder(
        v2_data, "val_annotations"
    )


def test_without_the_key_the_training_annotations_are_split_by_person(v2_data, config_of):
    config = config_of()
    prepared = prepare_data(config)
    assert sorted(prepared.splits) == ["train"]
    samples = read_annotations(v2_data["annotations"], v2_data["dataset"], TARGETS).samples
    train, val = split_by_user(samples, config.random_state, config.dataset.val_fraction)
    bundle = build_data(config, CPU, prepared)
    assert _keys(bundle.val_batches().dataset.samples) == _keys(val) and bundle.train_size == len(train)
    assert _keys(build_val_batches(config, CPU, prepared)().dataset.samples) == _keys(val)


def test_people_in_both_splits_are_a_warning_naming_how_many(v2_data, config_of, caplog):
    config = config_of(f"dataset.val_annotations={v2_data['annotations']}")  # the same three people
    with caplog.at_level(logging.WARNING, logger=loaders.__name__):
        build_val_batches(config, CPU, prepare_data(config))
    assert "3 people (user_id) are in both the training and the validation annotations" in caplog.text


def test_split_people_are_no_warning(v2_data, config_of, caplog):
    config = config_of(f"dataset.val_annotations={v2_data['val_annotations']}")
    with caplog.at_level(logging.WARNING, logger=loaders.__name__):
        build_val_batches(config, CPU, prepare_data(config))
    assert "people (user_id)" not in caplog.text


@pytest.mark.slow
def test_training_evaluation_and_promotion_use_the_given_split(v2_data, config_of, monkeypatch, tmp_path):
    built = []

    def recording(*args, **kwargs):
        built.append(build_data(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr("handgesture.training.run.build_data", recording)
    config = config_of(f"dataset.val_annotations={v2_data['val_annotations']}")
    summary = run_training(config, run_name="v2-splits")
    assert math.isfinite(summary.best_metric)
    assert _keys(built[0].val_batches().dataset.samples) == _folder(v2_data, "val_annotations")

    evaluated, start = evaluation_plan(summary.best_checkpoint, None, [])  # the checkpoint's own data
    assert evaluated.dataset.val_annotations == v2_data["val_annotations"]
    report = evaluate_checkpoint(start, evaluated, tmp_path / "eval", split="val")
    assert report.samples == len(_folder(v2_data, "val_annotations"))
    assert report.weighted["gesture"]["f1_score"] == pytest.approx(summary.best_metric, abs=1e-6)
    promoted = evaluator(evaluated, prepare_data(evaluated), None)(summary.best_checkpoint)
    assert promoted.f1["val"] == pytest.approx(summary.best_metric, abs=1e-6)
