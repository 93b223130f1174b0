"""TensorBoard: read the event files a run wrote back and check what a user would look for."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handgesture.training import run_training


def test_event_files_hold_loss_lr_metrics_confusion_and_hparams(tiny_config):
    result = run_training(tiny_config("train_params.log_every_n_steps=1"), run_name="tb")
    log_dir = Path(result.run_uri) / "tensorboard"
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()

    loss = events.Scalars("train/loss")
    assert len(loss) == result.global_step  # one point per step
    assert "train/lr" in tags["scalars"]
    steps_per_epoch = result.global_step // 2
    for head in ("gesture", "leading_hand"):
        for metric in ("accuracy", "f1_score", "precision", "recall"):
            # x is the global step, as for the training curves; epoch-indexed copies beside them
            assert [p.step for p in events.Scalars(f"val/{head}/{metric}")] == [
                steps_per_epoch,
                2 * steps_per_epoch,
            ]
            assert [p.step for p in events.Scalars(f"epoch/val/{head}/{metric}")] == [1, 2]
    assert events.Scalars("val/gesture/f1_score")[-1].value == result.metrics["gesture/f1_score"]
    assert len(events.Images("val/confusion_matrix")) == 2

    plugin_tags = set()
    for path in log_dir.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(path)).Reload()
        if _has_plugin(accumulator, "hparams"):
            plugin_tags |= set(accumulator.PluginTagToContent("hparams"))
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= plugin_tags


def _has_plugin(accumulator, name):
    try:
        accumulator.PluginTagToContent(name)
    except KeyError:
        return False
    return True
