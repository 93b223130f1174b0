"""The demo's promise: on the synthetic data, a small model reaches validation gesture F1 >= 0.9."""

import pytest

from handgesture.config import load_config
from handgesture.training import run_training


@pytest.mark.slow
def test_demo_config_learns_the_synthetic_gestures(tmp_path):
    config = load_config(
        "configs/demo.yaml",
        [
            f"dataset.annotations={tmp_path / 'data' / 'annotations'}",
            f"dataset.dataset={tmp_path / 'data' / 'images'}",
            f"dataset.cache_dir={tmp_path / 'data' / 'cache'}",
            f"storage.uri={tmp_path / 'runs'}",
        ],
    )
    result = run_training(config)  # generates the dataset on first use, as the demo does
    assert (tmp_path / "data" / "annotations").is_dir()
    assert result.best_metric >= 0.9, result.history
    assert result.metrics["leading_hand/f1_score"] >= 0.8, result.metrics


def test_a_loss_that_is_no_number_stops_the_run_naming_the_step_and_saves_nothing_as_best(
    tiny_config, tmp_path
):
    from handgesture.errors import InputError
    from handgesture.training.engine import TrainingDiverged

    diverged = r"loss became nan between steps \d+ and \d+ \(epoch 1\)"
    with pytest.raises(TrainingDiverged, match=diverged) as info:
        run_training(tiny_config("optimizer.lr=1e6", "train_params.epochs=1"), run_name="diverged")
    assert isinstance(info.value, InputError)  # a retry would diverge again
    folder = tmp_path / "runs" / "demo" / "diverged"
    assert (folder / "manifest.json").is_file() and not (folder / "best_model.pth").exists()
