import pytest

from handgesture.config import ConfigError, config_hash, from_dict, load_config, to_dict


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
