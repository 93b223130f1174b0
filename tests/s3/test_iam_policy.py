"""docs/deployments.md's IAM policy is valid JSON and enough: with signatures and IAM policies enforced by
moto, a user holding exactly that policy (its bucket swapped for the test's) trains into S3 through a saved
credentials block, has old checkpoints deleted by retention, resumes, and promotes the run to the
experiment's best (conditional writes). A user without the bucket listing is refused."""

import json
import re
import uuid

import pytest
from handgesture_cli.main import main as handgesture

from tests.commands import train
from tests.readme import ROOT
from tests.s3.test_s3_training import _iam, remove_env_credentials, save_credentials_block
from tests.tiny import tiny_dotlist

pytestmark = [pytest.mark.s3, pytest.mark.slow]
DOCS = ROOT / "docs/deployments.md"


def documented_policy(bucket: str) -> dict:
    """The docs' policy for `bucket`, plus the one action moto names its own way: AWS authorises HeadBucket
    (the bucket check) by s3:ListBucket, moto by s3:HeadBucket."""
    text = DOCS.read_text().split("What the block's keys need", 1)[1]
    policy = json.loads(re.search(r"```json\n(.*?)```", text, re.S)[1])
    policy = json.loads(json.dumps(policy).replace("my-bucket", bucket))
    [listing] = [s for s in policy["Statement"] if s["Sid"] == "RunFolders"]
    listing["Action"] = [*listing["Action"], "s3:HeadBucket"]
    return policy


def user_with(server, policy: dict) -> tuple[str, str]:
    iam, user = _iam(server), f"policy-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="documented", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_the_documented_policy_trains_retains_resumes_and_promotes(
    prefect_harness, tiny_dataset, s3_env, s3_bucket, monkeypatch, capsys
):
    policy = documented_policy(s3_bucket)
    assert {s["Sid"] for s in policy["Statement"]} == {"RunFolders", "Checkpoints"}
    block = save_credentials_block(s3_env, *user_with(s3_env, policy))
    remove_env_credentials(monkeypatch)
    storage = ["--storage", f"s3://{s3_bucket}/handgesture"]
    settings = [*tiny_dotlist(tiny_dataset), f"storage.block=aws-credentials/{block}"]
    settings += [
        f"storage.endpoint_url={s3_env.endpoint_url}",
        "checkpoint.keep_last=1",
        "checkpoint.keep_best=1",
    ]
    with s3_env.auth_enforced():
        first = train([*storage, "--epochs", "3", *settings])
        assert first.run_uri.startswith(f"s3://{s3_bucket}/handgesture/handgesture/")
        continued = train(["--resume", first.run_uri, "--epochs", "4", *settings])
        assert continued.epochs == 4 and continued.resumed_from == first.last_checkpoint
        assert handgesture(["promote", continued.best_checkpoint, *settings[-3:-1]]) == 0
    assert "promoted" in capsys.readouterr().out.lower()
    prefix = first.run_uri.split(f"s3://{s3_bucket}/", 1)[1] + "/checkpoints/"
    listed = s3_env.client().list_objects_v2(Bucket=s3_bucket, Prefix=prefix).get("Contents", [])
    assert 1 <= len(listed) <= 2  # 3 epochs' checkpoints, retention kept the newest and the best


def test_a_user_without_the_listing_is_refused(prefect_harness, tiny_dataset, s3_env, s3_bucket, monkeypatch):
    policy = documented_policy(s3_bucket)
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "RunFolders"]
    block = save_credentials_block(s3_env, *user_with(s3_env, policy))
    remove_env_credentials(monkeypatch)
    settings = [*tiny_dotlist(tiny_dataset), f"storage.block=aws-credentials/{block}"]
    settings.append(f"storage.endpoint_url={s3_env.endpoint_url}")
    with s3_env.auth_enforced(), pytest.raises(Exception, match=block):
        train(["--storage", f"s3://{s3_bucket}/handgesture", "--epochs", "1", *settings])
