import pytest

from handgesture.config import (
    ConfigError,
    config_hash,
    from_dict,
    load_config,
    to_dict,
)


def test_default_config_keeps_hagrid_key_names():
    config = load_config()
    assert config.dataset.image_size == [224, 224]
    assert len(config.dataset.targets) == 19 and config.dataset.targets[-1] == "no_gesture"
    assert config.model.name == "ResNet18"
    assert config.train_params.prefetch_factor == 2
    assert config.metric_params.average == "weighted"


def test_override_file_and_dotlist_are_merged_over_default():
    config = load_config("configs/demo.yaml", ["train_params.epochs=3", "model.name=MobileNetV3_small"])
    assert config.dataset.image_size == [64, 64]  # from demo.yaml
    assert config.train_params.epochs == 3
    assert config.model.name == "MobileNetV3_small"
    assert config.optimizer.momentum == 0.9  # from default.yaml


def test_round_trip_through_plain_dict():
    config = load_config(overrides=["optimizer.lr=0.1"])
    assert from_dict(to_dict(config)) == config
    assert config_hash(config) == config_hash(from_dict(to_dict(config)))
    assert config_hash(config) != config_hash(load_config())


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["train_params.epoch=3"], "train_params.epoch"),
        (["model.nmae=ResNet18"], "model.nmae"),
        (["train_params.epochs=three"], "train_params.epochs"),
        (["optimizer.lr=fast"], "optimizer.lr"),
        (["optimizer.lr=-0.1"], "optimizer.lr"),
        (["train_params.epochs=-1"], "train_params.epochs"),
        (["model.name=ResNet19"], "model.name"),
        (["device=tpu"], "device"),
        # Each of these ran (NaN losses, a model that learns nothing) or failed late, with exit 0 or retries.
        (["optimizer.lr=nan"], "optimizer.lr"),
        (["optimizer.lr=inf"], "optimizer.lr"),
        (["optimizer.momentum=-0.5"], "optimizer.momentum"),
        (["optimizer.weight_decay=-1"], "optimizer.weight_decay"),
        (["optimizer.optimizer=Adagrad"], "optimizer.optimizer"),
        (["scheduler.start_factor=0"], "scheduler.start_factor"),
        (["scheduler.start_factor=1.5"], "scheduler.start_factor"),
        (["dataset.val_fraction=1.0"], "dataset.val_fraction"),
        (["dataset.val_fraction=0"], "dataset.val_fraction"),
        (["checkpoint.every_seconds=-1"], "checkpoint.every_seconds"),
        (["checkpoint.every_n_steps=-5"], "checkpoint.every_n_steps"),
        (["storage.upload_timeout=-1"], "storage.upload_timeout"),
        (["train_params.prefetch_factor=0"], "train_params.prefetch_factor"),
        (["device=cuda:x"], "device"),
        (["metric_params.average=median"], "metric_params.average"),
        (["metric_params.metrics=[accuracy]"], "metric_params.metrics"),
        (["dataset.image_size=[100000,100000]"], "dataset.image_size"),
        (["checkpoint.keep_last=0", "checkpoint.keep_best=0"], "at least one committed checkpoint"),
        (["storage.experiment=../../etc"], "storage.experiment"),
        (["storage.run_name=a/b"], "storage.run_name"),
        (["storage.run_name=best"], "storage.run_name"),
        (["storage.experiment=.."], "storage.experiment"),
        (["dataset.targets=[fist]"], "dataset.targets"),
    ],
)
def test_bad_overrides_are_errors_naming_the_key(overrides, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(overrides=overrides)


def test_unknown_key_in_a_file_names_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_params:\n  epocs: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train_params\.epocs"):
        load_config(bad)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_an_error_before_training():
    with pytest.raises(ConfigError, match="no CUDA device"):
        load_config(overrides=["device=cuda"])


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_the_named_optimizer_is_the_one_that_trains(name):
    import torch

    from handgesture.training.setup import build_trainer

    config = load_config(overrides=[f"optimizer.optimizer={name}", "model.name=MobileNetV3_small"])
    trainer = build_trainer(config, torch.device("cpu"), steps_per_epoch=3)
    assert type(trainer.optimizer) is getattr(torch.optim, name)


def test_only_the_listed_metrics_are_computed():
    import torch

    from handgesture.metrics import HeadMetrics

    metrics = HeadMetrics(3, torch.device("cpu"), names=("f1_score", "recall"))
    metrics.update(torch.eye(3), torch.tensor([0, 1, 2]))
    assert set(metrics.compute()) == {"f1_score", "recall"}


def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_params:\n  epochs: 3\n   lr: [0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    message = str(info.value)
    assert message.startswith(f"config file {bad} is not valid YAML at line 3") and "\n" not in message


def test_duplicate_class_names_are_refused():
    """A name listed twice gets two outputs of the gesture head, one of which no sample ever trains."""
    with pytest.raises(ConfigError, match=r"dataset\.targets must be >= 2 distinct class names"):
        load_config(overrides=["dataset.targets=[fist,fist,palm]"])
