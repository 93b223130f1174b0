"""The report's commands read whole in the UI (long ones wrapped, one option per line) and a deployment's
run is continued through its deployment."""

import shlex

from handgesture.report import deployment_resume_command, render_report, wrapped
from handgesture.training.summary import RunSummary

LONG = (
    "python flows/train.py --resume '/a long/path/runs/demo/demo-resnet18-crafty-frog-0791c/best_model.pth'"
)


def test_a_long_command_is_wrapped_and_still_the_same_command():
    command = f"{LONG} --epochs 11 storage.uri=runs storage.experiment=demo"
    lines = wrapped(command).splitlines()
    assert lines[0] == "python flows/train.py \\" and lines[-1] == "    storage.experiment=demo"
    assert all(len(line) <= 100 for line in lines)
    assert shlex.split(wrapped(command).replace("\\\n", " ")) == shlex.split(command)
    assert wrapped("handgesture evaluate x.pth") == "handgesture evaluate x.pth"


def _summary(run: str) -> RunSummary:
    return RunSummary(
        run_uri=run, best_checkpoint=f"{run}/best_model.pth", last_checkpoint=f"{run}/best_model.pth",
        epochs=1, global_step=4, best_metric=0.5, best_epoch=1, metrics={}, history=[], missing_images=0,
        skipped_images=0,
    )  # fmt: skip


def test_a_deployments_run_is_continued_through_its_deployment_first():
    report = render_report(
        _summary("/worker/runs/demo/r1"), "ResNet18", "train-hand-gesture-classifier/train", "abc"
    )
    suggested = deployment_resume_command("train-hand-gesture-classifier/train", "abc")
    assert suggested == (
        "prefect deployment run train-hand-gesture-classifier/train --param resume=prefect://flow-runs/abc"
    )
    continued = report.split("## Continue training", 1)[1]
    assert continued.index("prefect deployment run") < continued.index("python flows/train.py")
    local = render_report(_summary("/worker/runs/demo/r1"), "ResNet18").split("## Continue training", 1)[1]
    assert "prefect deployment run" not in local and "python flows/train.py" in local
