"""Every report and table the flows publish fits the Prefect UI at 1280 px (tests/report_width.py): built from
a real tiny run's summary, where it trained and moved to a deep folder and to S3 (long paths)."""

import dataclasses
import json
import shlex
import uuid

import pytest

from handgesture.evaluation import evaluate_checkpoint, evaluation_plan
from handgesture.promotion import PromotionDecision
from handgesture.report import (
    checkpoints_table,
    deployment_resume_command,
    metrics_table,
    promotion_report,
    render_evaluation,
    render_report,
    wrapped_deployment_command,
)
from handgesture.report_layout import WIDTH, unwrapped, wrapped
from handgesture.sweep import Trial, TrialRun, leaderboard
from handgesture.sweep_tables import leaderboard_table, rungs_table
from tests.report_width import markdown_problems, table_problems

DEEP = "/home/someone/projects/hand-gesture-recognition/checkouts/main/runs/demo"
S3 = "s3://ml-team-checkpoints/hand-gestures/runs/demo"


def _moved(summary, root: str):
    """The same summary, its run's files under `root` with a name like a flow run's folder."""
    old = summary.run_uri
    new = f"{root}/demo-mobilenetv3-small-hilarious-mackerel-0b6c1234"
    fields = ("run_uri", "best_checkpoint", "last_checkpoint", "best_weights", "resumed_from")
    return dataclasses.replace(
        summary,
        **{f: getattr(summary, f).replace(old, new) for f in fields if getattr(summary, f)},
        resumed_from=summary.last_checkpoint.replace(old, new),
        storage_overrides=["storage.endpoint_url=http://minio.internal.example.com:9000"],
        location_overrides=[f"storage.uri={root.rsplit('/', 1)[0]}", "storage.experiment=demo"],
    )


@pytest.fixture(scope="module")
def summaries(trained_run):
    summary, _ = trained_run
    return [summary, _moved(summary, DEEP), _moved(summary, S3)]


@pytest.mark.slow
def test_a_tiny_runs_reports_and_tables_fit_at_1280_px(summaries):
    for summary in summaries:
        for report in (
            render_report(summary, "MobileNetV3_small"),
            render_report(
                summary, "MobileNetV3_small", "train-hand-gesture-classifier/train", str(uuid.uuid4())
            ),
        ):
            assert markdown_problems(report) == [], report
        assert table_problems(metrics_table(summary)) == []
        assert table_problems(checkpoints_table(summary)) == []  # full URIs, in the last column
        decision = PromotionDecision(
            promoted=True,
            reason="challenger 0.1234 beats current best 0.0123 (+0.0)",
            metric="gesture/f1_score",
            challenger=summary.best_checkpoint,
            challenger_metric=0.1234,
            incumbent=summary.last_checkpoint,
            incumbent_metric=0.0123,
            pointer=summary.run_uri.rsplit("/", 1)[0] + "/best.json",
            challenger_test_metric=0.2,
            incumbent_test_metric=0.1,
        )
        assert markdown_problems(promotion_report(decision)) == [], promotion_report(decision)
        trials = [
            Trial(0, ("optimizer.lr=0.01", "scheduler.warmup_steps=20")),
            Trial(1, ("optimizer.lr=0.03",)),
        ]
        runs = [_trial_run(summary, trial, str(uuid.uuid4())) for trial in trials]
        assert table_problems(leaderboard_table(leaderboard(trials, runs))) == []
        assert table_problems(rungs_table(runs)) == []


@pytest.mark.slow
def test_an_evaluation_report_fits_at_1280_px(trained_run, tmp_path):
    summary, _ = trained_run
    config, start = evaluation_plan(summary.best_checkpoint, None, [])
    report = evaluate_checkpoint(start, config, tmp_path / "an evaluation folder named at length" / "eval")
    assert markdown_problems(render_evaluation(report)) == [], render_evaluation(report)


def _trial_run(summary, trial: Trial, flow_run_id: str) -> TrialRun:
    run = TrialRun(trial.number, 0, 1, flow_run_id, "Completed", summary.best_metric)
    run.run_uri, run.best_checkpoint = summary.run_uri, summary.best_checkpoint
    run.last_checkpoint, run.resumed_from = summary.last_checkpoint, summary.resumed_from
    return run


def test_the_check_sees_a_long_code_line_a_long_path_in_prose_and_a_cut_off_header():
    long_path = f"{DEEP}/demo-mobilenetv3-small-hilarious-mackerel-0b6c1234/best_model.pth"
    assert markdown_problems(f"```\npython flows/train.py --resume {long_path} --epochs 6\n```")
    assert markdown_problems(f"- best checkpoint: `{long_path}`")
    assert not markdown_problems(f"- best checkpoint: [`x/best_model.pth`]({long_path})")
    assert markdown_problems(f"| model | score |\n|---|---|\n| `{long_path}` | 0.5 |")
    assert table_problems([{"checkpoint": long_path, "a long header nobody sees": 1}])
    assert not table_problems([{"kind": "best", "uri": long_path}])


def test_a_path_longer_than_a_line_is_folded_after_a_slash_and_the_shell_joins_it_back():
    checkpoint = f"{DEEP}/demo-mobilenetv3-small-frog-0b6c1234/best_model.pth"
    command = f"python flows/train.py --resume {checkpoint} --epochs 6"
    text = wrapped(command)
    assert all(len(line) <= WIDTH for line in text.splitlines()), text
    assert shlex.split(unwrapped(text)) == shlex.split(command)


def test_the_deployment_resume_command_fits_and_carries_what_reaches_the_storage(summaries):
    summary = summaries[2]
    command = deployment_resume_command("train-hand-gesture-classifier/train", str(uuid.uuid4()), summary)
    text = wrapped_deployment_command(command)
    assert all(len(line) <= WIDTH for line in text.splitlines()), text
    words = shlex.split(unwrapped(text))  # the list's line breaks stay inside its quotes, as in a shell
    assert words[:-1] == shlex.split(command)[:-1] and words[-2] == "--param"
    given = json.loads(words[-1].split("=", 1)[1])
    assert (
        given
        == json.loads(shlex.split(command)[-1].split("=", 1)[1])
        == [
            f"train_params.epochs={summary.epochs + 5}",
            "storage.endpoint_url=http://minio.internal.example.com:9000",
            f"storage.uri={S3.rsplit('/', 1)[0]}",
            "storage.experiment=demo",
        ]
    )
