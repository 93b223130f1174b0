"""HaGRID's and the tutorial's configs run as given with --config: their own keys mapped or refused."""

import pytest

from handgesture.config import load_config
from handgesture.errors import ConfigError
from tests.hagrid import HAGRID_CONFIG, TUTORIAL_CONFIG


@pytest.mark.parametrize("path", [HAGRID_CONFIG, TUTORIAL_CONFIG])
def test_their_config_files_load_as_given(path):
    config = load_config(path)
    assert config.storage.experiment == "MobileNetV3_small"  # experiment_name
    assert config.model.name == "MobileNetV3_small" and config.device == "cpu"
    assert config.checkpoint.resume is None  # their model.checkpoint is not there: ignored, as HaGRID does
    assert config.train_params.prefetch_factor == 16 and config.dataset.image_size == [224, 224]
    assert config.model.full_frame is False  # v1's own key, as it is (a v1 file is never taken for v2's)


def test_an_existing_model_checkpoint_is_where_the_run_starts(tmp_path):
    (tmp_path / "best_model.pth").write_bytes(b"weights")
    text = HAGRID_CONFIG.read_text().replace("/path/to/chackpoint", str(tmp_path / "best_model.pth"))
    (tmp_path / "config.yaml").write_text(text.replace("start_epoch: 0", "start_epoch: 3"))
    assert load_config(tmp_path / "config.yaml").checkpoint.resume == str(tmp_path / "best_model.pth")


def test_our_own_experiment_key_wins_over_experiment_name():
    assert load_config(HAGRID_CONFIG, ["storage.experiment=mine"]).storage.experiment == "mine"


@pytest.mark.parametrize(
    ("replace", "named"),
    [
        (("start_epoch: 0", "start_epoch: 5"), "model.start_epoch=5"),
    ],
)
def test_what_cannot_be_mapped_is_refused_with_the_reason(tmp_path, replace, named):
    (tmp_path / "config.yaml").write_text(HAGRID_CONFIG.read_text().replace(*replace))
    with pytest.raises(ConfigError, match=named) as info:
        load_config(tmp_path / "config.yaml")
    assert str(tmp_path / "config.yaml") in str(info.value)


def test_every_unknown_key_is_named_in_one_error(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "model:\n  nmae: ResNet18\nlerning_rate: 1\ntrain_params:\n  epoch: 2\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.yaml")
    message = str(info.value)
    assert "model.nmae" in message and "lerning_rate" in message and "train_params.epoch" in message
    with pytest.raises(ConfigError, match="optimizer.lrr, storage.bucket"):
        load_config(None, ["optimizer.lrr=1", "storage.bucket=x"])


def test_the_hagrid_v2_config_lists_v2s_classes():
    from handgesture.labels import HAGRID_V2_TARGETS

    config = load_config("configs/hagrid_v2.yaml")
    assert config.dataset.targets == HAGRID_V2_TARGETS and config.synthetic.hagrid_version == 2
