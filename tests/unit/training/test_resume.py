"""Exact resume: training 2 epochs equals training 1 epoch, then resuming for 1, to the last bit."""

import json
from pathlib import Path

import pytest
import torch

from handgesture.errors import CheckpointError
from handgesture.training import run_training


def assert_identical(a, b, path="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path} keys differ"
        for key in a:
            assert_identical(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path} length differs"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def final_state(checkpoint_path):
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    return {k: checkpoint[k] for k in ("state_dict", "optimizer_state_dict", "scheduler_state_dict", "epoch")}


@pytest.mark.slow
def test_two_epochs_equal_one_plus_resumed_one(tiny_config):
    # MobileNetV3 heads have dropout; the sampler shuffles; crops are randomly scaled; 2 loader workers.
    straight = run_training(tiny_config("train_params.num_workers=2"), run_name="straight")
    first = run_training(tiny_config("train_params.num_workers=2", "train_params.epochs=1"), run_name="first")
    resumed = run_training(
        tiny_config("train_params.num_workers=2"), run_name="resumed", resume=first.last_checkpoint
    )

    assert resumed.resumed_from == first.last_checkpoint
    assert_identical(final_state(straight.last_checkpoint), final_state(resumed.last_checkpoint))
    assert resumed.history == straight.history


@pytest.mark.slow
def test_resume_from_an_epoch_checkpoint_of_a_cosine_run(tiny_config):
    # Cosine decay's horizon is part of the scheduler state: resume the run's own epoch-1 checkpoint.
    config = tiny_config("scheduler.cosine=true")
    straight = run_training(config, run_name="straight")
    epoch_one = next(e for e in _manifest(straight)["checkpoints"] if e["epoch"] == 1)
    resumed = run_training(config, run_name="resumed", resume=epoch_one["uri"])
    assert_identical(final_state(straight.last_checkpoint), final_state(resumed.last_checkpoint))


def schedule_at_end(result) -> tuple[dict, list[float]]:
    checkpoint = torch.load(result.last_checkpoint, weights_only=True)
    rates = [group["lr"] for group in checkpoint["optimizer_state_dict"]["param_groups"]]
    return checkpoint["scheduler_state_dict"], rates


@pytest.mark.slow
def test_a_resume_that_changes_the_horizon_follows_this_runs_cosine(tiny_config):
    settings = ("scheduler.cosine=true", "train_params.epochs=3")
    straight = run_training(tiny_config(*settings), run_name="straight")
    first_runs = {
        "more epochs": [],  # the saved cosine ends after epoch 1, then climbs back up
        # Twice the steps per epoch, as with half the world size: the saved horizon counts other steps.
        "another global batch": ["train_params.train_batch_size=8"],
    }
    for name, changes in first_runs.items():
        first = run_training(
            tiny_config("scheduler.cosine=true", "train_params.epochs=1", *changes), run_name=f"first-{name}"
        )
        resumed = run_training(
            tiny_config(*settings), run_name=f"resumed-{name}", resume=first.last_checkpoint
        )
        assert resumed.global_step - first.global_step == straight.global_step * 2 // 3, name  # epochs 2, 3
        assert schedule_at_end(resumed) == schedule_at_end(straight), name


def test_a_resume_with_another_learning_rate_uses_it(tiny_config):
    first = run_training(tiny_config("train_params.epochs=1"), run_name="first")
    resumed = run_training(tiny_config("optimizer.lr=0.5"), run_name="resumed", resume=first.last_checkpoint)
    schedule, rates = schedule_at_end(resumed)
    assert schedule["base_lrs"] == [0.5] and rates == [0.5]  # past the warm-up: the configured rate


def _manifest(result):
    import json
    from pathlib import Path

    return json.loads((Path(result.run_uri) / "manifest.json").read_text())


def test_resume_from_run_folder_continues_counters(tiny_config):
    first = run_training(tiny_config("train_params.epochs=1"), run_name="a")
    second = run_training(tiny_config("train_params.epochs=2"), run_name="b", resume=first.run_uri)
    assert second.epochs == 2
    assert second.global_step == 2 * first.global_step
    lineage = torch.load(second.last_checkpoint, weights_only=True)["lineage"]
    assert lineage["parent"] == first.last_checkpoint
    assert lineage["run_name"] == "b"


def test_resume_with_conflicting_architecture_names_both(tiny_config):
    first = run_training(tiny_config("train_params.epochs=1"), run_name="a")
    with pytest.raises(CheckpointError, match=r"model_name='MobileNetV3_small'.*model_name='ResNet18'"):
        run_training(tiny_config("model.name=ResNet18"), resume=first.last_checkpoint)


def test_resume_with_conflicting_image_size_names_both(tiny_config):
    first = run_training(tiny_config("train_params.epochs=1"), run_name="a")
    with pytest.raises(CheckpointError, match=r"image_size=\[32, 32\].*image_size=\[48, 48\]"):
        run_training(tiny_config("dataset.image_size=[48,48]"), resume=first.last_checkpoint)


def test_resume_from_missing_path_names_it(tiny_config, tmp_path):
    missing = tmp_path / "nowhere" / "best_model.pth"
    with pytest.raises(CheckpointError, match=str(missing)):
        run_training(tiny_config(), resume=str(missing))


@pytest.mark.slow
def test_resume_from_mid_epoch_and_epoch_end_checkpoints_is_exact(tiny_config):
    # Composer-style: one uninterrupted run, then resumes from several of its committed checkpoints.
    settings = (
        "train_params.num_workers=2",
        "checkpoint.every_n_steps=4",
        "checkpoint.keep_last=100",
        "scheduler.cosine=true",
    )
    straight = run_training(tiny_config(*settings), run_name="straight")
    entries = _manifest(straight)["checkpoints"]
    mid_first = next(e for e in entries if e["epoch"] == 0 and e["position"] > 0)
    epoch_end = next(e for e in entries if e["epoch"] == 1 and e["position"] == 0)
    mid_second = next(e for e in entries if e["epoch"] == 1 and e["position"] > 0)
    for entry in (mid_first, epoch_end, mid_second):
        resumed = run_training(
            tiny_config(*settings), run_name=f"from-{entry['global_step']}", resume=entry["uri"]
        )
        assert_identical(
            final_state(straight.last_checkpoint),
            final_state(resumed.last_checkpoint),
            f"resumed at step {entry['global_step']}",
        )
        assert resumed.history == straight.history


def test_finetune_mode_loads_what_fits_and_reports_reinitialised_heads(tiny_config):
    first = run_training(tiny_config("train_params.epochs=1"), run_name="base")
    targets = "dataset.targets=[call,dislike,fist,four,like,no_gesture]"
    tuned = run_training(
        tiny_config(targets, "checkpoint.resume_mode=finetune", "train_params.epochs=1"),
        run_name="tuned",
        resume=first.last_checkpoint,
    )
    assert tuned.resumed_from == first.last_checkpoint
    assert tuned.epochs == 1 and tuned.global_step < 2 * first.global_step  # fresh counters
    assert tuned.finetune_skipped == ["gesture_classifier.3.bias", "gesture_classifier.3.weight"]
    checkpoint = torch.load(tuned.last_checkpoint, weights_only=True)
    assert checkpoint["class_names"] == ["call", "dislike", "fist", "four", "like", "no_gesture"]
    assert checkpoint["lineage"]["parent"] == first.last_checkpoint


def test_resume_with_other_classes_names_both_lists(tiny_config):
    first = run_training(tiny_config("train_params.epochs=1"), run_name="a")
    with pytest.raises(CheckpointError, match=r"class_names=\[.*no_gesture'\].*class_names=\['call', 'like'"):
        run_training(tiny_config("dataset.targets=[call,like,no_gesture]"), resume=first.last_checkpoint)


def test_what_reading_skipped_reaches_the_summary_and_its_printout(tiny_config, capsys):
    from handgesture.report import print_summary

    config = tiny_config("train_params.epochs=1", "dataset.targets=[call,like,no_gesture,waving]")
    summary = run_training(config, run_name="notes")
    assert summary.data_notes == [
        f"no annotation file for targets ['waving'] in {config.dataset.annotations}"
    ]
    print_summary(summary)
    assert "data:                  no annotation file for targets ['waving']" in capsys.readouterr().out


def test_a_run_folder_in_use_by_another_live_run_is_refused_and_left_alone(tiny_config, tmp_path):
    from handgesture.checkpoints.lease import RunFolderBusyError, RunLease
    from handgesture.storage import open_store

    config = tiny_config("train_params.epochs=1", "storage.run_name=shared")
    first = run_training(config)
    before = (Path(first.run_uri) / "manifest.json").read_bytes()
    other = RunLease(open_store(first.run_uri), "flow-run-someone-else")
    other.acquire()  # another run is writing this folder right now
    with pytest.raises(RunFolderBusyError, match="flow-run-someone-else"):
        run_training(config)
    assert (Path(first.run_uri) / "manifest.json").read_bytes() == before
    other.release()


def test_a_resume_into_a_folder_that_already_holds_another_run_is_an_error(tiny_config):
    from handgesture.errors import ConfigError

    base = run_training(tiny_config("train_params.epochs=1"), run_name="base")
    run_training(tiny_config("train_params.epochs=1"), run_name="taken")
    with pytest.raises(ConfigError, match=r"already holds checkpoints of a run that started from scratch"):
        run_training(tiny_config("train_params.epochs=2"), run_name="taken", resume=base.last_checkpoint)
    # The same resume again (a retried task) continues that run's own folder.
    resumed = run_training(
        tiny_config("train_params.epochs=2"), run_name="again", resume=base.last_checkpoint
    )
    again = run_training(tiny_config("train_params.epochs=3"), run_name="again", resume=base.last_checkpoint)
    assert again.resumed_from == resumed.resumed_from == base.last_checkpoint and again.epochs == 3


def test_a_resumed_run_never_deletes_the_checkpoint_it_continued_from(tiny_config, tmp_path):
    keep_one = ("checkpoint.keep_last=1", "checkpoint.keep_best=0", "storage.run_name=continued")
    first = run_training(tiny_config("train_params.epochs=1", *keep_one))
    continued_from = first.last_checkpoint
    run_training(tiny_config("train_params.epochs=3", *keep_one))  # the same folder: continues from it
    assert Path(continued_from).is_file()  # protected, although keep_last=1 would have deleted it
    manifest = json.loads((Path(first.run_uri) / "manifest.json").read_text())
    assert continued_from.removeprefix(first.run_uri + "/") in {e["key"] for e in manifest["checkpoints"]}


def test_a_rerun_of_a_run_continues_from_its_own_newest_checkpoint(tiny_config):
    run_training(tiny_config("storage.run_name=again", "train_params.epochs=1"))
    trained: list[int] = []
    rerun = run_training(
        tiny_config("storage.run_name=again", "train_params.epochs=2"),
        on_epoch=lambda p, _m: trained.append(p.epoch),
    )
    assert trained == [2] and rerun.epochs == 2  # epoch 1 came from the folder's own checkpoint
