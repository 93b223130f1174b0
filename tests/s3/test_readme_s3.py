"""The README's "Checkpoints in S3" block, run as printed against moto: the saved block is the only
credential the runs have (the environment's keys are removed, and no profile exists), a run lands under
`<storage>/handgesture/<run>` as the README explains, and the resume by that URI continues it.
Placeholders and tiny settings: tests/readme.py."""

import re
import subprocess
import sys

import pytest

from tests.commands import train
from tests.flow.test_readme_newcomer import api_env, data_settings
from tests.readme import commands, substitute, tiny

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_the_s3_section_runs_as_printed(prefect_harness, tiny_dataset, s3_env, s3_bucket, monkeypatch):
    save, first, resume = commands("Checkpoints in S3")
    assert save[:2] == ["python", "-c"]
    keys = iter([s3_env.access_key, s3_env.secret_key])  # the two '…' placeholders, in order
    save[2] = re.sub("'…'", lambda _: repr(next(keys)), save[2])
    done = subprocess.run(
        [sys.executable, *save[1:]], env=api_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    values = {"my-bucket": s3_bucket}
    settings = [*data_settings(tiny_dataset), *tiny(first), f"storage.endpoint_url={s3_env.endpoint_url}"]
    written = train(substitute(first, values)[2:] + settings)
    assert written.run_uri.startswith(f"s3://{s3_bucket}/handgesture/handgesture/")
    run = written.run_uri.rsplit("/", 1)[1]
    resume = substitute(resume, {**values, "<run>": run})
    continued = train(resume[2:] + [f"storage.endpoint_url={s3_env.endpoint_url}"])
    assert continued.resumed_from == written.last_checkpoint
    assert continued.epochs == 3 and [row["epoch"] for row in continued.history] == [1, 2, 3]
