"""Config input from outside (overrides, files, checkpoints) never resolves an interpolation, and a
checkpoint's embedded config never decides where data is written or sent (DESIGN.md, trust boundaries)."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from handgesture_cli.main import main as cli_main
from omegaconf import OmegaConf

from handgesture.checkpoint_config import CHECKPOINT_KEYS, DROP, TAKE, checkpoint_config
from handgesture.checkpoints.format import SCHEMA_VERSION
from handgesture.config import Config, config_hash, from_dict, load_config, to_dict, to_yaml
from handgesture.config_checks import INTERPOLATION_ALLOWED, config_value
from handgesture.errors import ConfigError
from handgesture.evaluation import evaluation_plan
from handgesture.training.resume import run_plan

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's example secret key: "/" fails a name check
SECRET_VAR = "HANDGESTURE_TEST_SECRET_ACCESS_KEY"
LOOKUP = "${oc.env:" + SECRET_VAR + "}"


def run_config(path, overrides, resume):
    """The config a run is planned with (its start point aside)."""
    return run_plan(path, overrides, resume)[0]


def evaluation_config(uri, path, overrides):
    return evaluation_plan(uri, path, overrides)[0]


@pytest.fixture(autouse=True)
def secret_in_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(SECRET_VAR, SECRET)
    monkeypatch.setenv("HANDGESTURE_CACHE", str(tmp_path / "download-cache"))


def schema_keys() -> list[str]:
    def leaves(data, prefix=""):
        for key, value in data.items():
            yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]

    return list(leaves(OmegaConf.to_container(OmegaConf.structured(Config))))


def nested(dotted: str, value) -> dict:
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def with_key(config: dict, dotted: str, value) -> dict:
    """A copy of `config` with `dotted` set to `value`."""
    return OmegaConf.to_container(OmegaConf.merge(config, nested(dotted, value)), resolve=False)


def holds(data: dict, dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    return head in data and (not rest or (isinstance(data[head], dict) and holds(data[head], rest)))


def write_checkpoint(path: Path, config: dict) -> str:
    """A checkpoint in our schema with `config` embedded (no weights: only its config is read here)."""
    torch.save(
        {
            "schema_version": SCHEMA_VERSION,
            "state_dict": {},
            "config": config,
            "model_name": config["model"]["name"],
            "class_names": config["dataset"]["targets"],
            "image_size": config["dataset"]["image_size"],
        },
        path,
    )
    return str(path)


def assert_refused_without_the_secret(call, key: str, source: str) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert key in message and source in message, message
    assert SECRET not in message and SECRET_VAR not in message and "oc.env" not in message, message
    assert "\n" not in message
    return message


# 1. Interpolations are off for overrides, files and checkpoints.


def test_the_allow_list_of_interpolated_keys_is_empty():
    assert not INTERPOLATION_ALLOWED


@pytest.mark.parametrize(
    ("override", "key"),
    [
        (f"storage.run_name={LOOKUP}", "storage.run_name"),  # the red team's: the run folder's name
        (f"storage.uri=runs/{LOOKUP}", "storage.uri"),  # inside a longer string
        (f"train_params.epochs={LOOKUP}", "train_params.epochs"),  # OmegaConf echoed it in a type error
        (f"storage.run_name=\\{LOOKUP}", "storage.run_name"),  # escaped: text once, then resolved by to_dict
        (f'dataset.targets=[fist,"{LOOKUP}"]', "dataset.targets"),  # inside a list
        ("storage.run_name=${storage.experiment}", "storage.run_name"),  # another key: no resolver at all
    ],
)
def test_an_interpolation_in_an_override_is_refused_without_its_value(override, key):
    assert_refused_without_the_secret(lambda: load_config(overrides=[override]), key, "overrides")


def test_an_interpolation_in_a_config_file_is_refused_naming_key_and_file(tmp_path):
    file = tmp_path / "evil.yaml"
    file.write_text(f"storage:\n  endpoint_url: {LOOKUP}\n")
    message = assert_refused_without_the_secret(lambda: load_config(file), "storage.endpoint_url", str(file))
    assert "config file" in message


@pytest.mark.parametrize("key", ["dataset.dataset", "storage.uri"])  # a taken key and a dropped one
def test_an_interpolation_in_a_checkpoints_config_is_refused_by_resume_and_evaluate(tmp_path, key):
    evil = write_checkpoint(tmp_path / "evil.pth", with_key(to_dict(load_config()), key, LOOKUP))
    assert_refused_without_the_secret(lambda: run_config(None, [], evil), key, "checkpoint")
    assert_refused_without_the_secret(lambda: evaluation_config(evil, None, []), key, "checkpoint")


def test_an_interpolation_in_a_config_dict_a_task_receives_is_refused():
    data = with_key(to_dict(load_config()), "dataset.cache_uri", LOOKUP)
    assert_refused_without_the_secret(lambda: from_dict(data), "dataset.cache_uri", "config dict")


def test_a_config_holding_interpolation_text_is_written_and_hashed_as_text():
    """to_dict, to_yaml and config_hash, which feed checkpoints, config.yaml and lineage, resolve nothing."""
    config = load_config()
    config.storage.endpoint_url = LOOKUP
    config.dataset.targets = [*config.dataset.targets[:-1], LOOKUP]
    assert to_dict(config)["storage"]["endpoint_url"] == LOOKUP
    assert SECRET not in json.dumps(to_dict(config)) and SECRET not in to_yaml(config)
    other = dataclasses.replace(config, storage=dataclasses.replace(config.storage, endpoint_url="x"))
    assert config_hash(config) != config_hash(other)  # hashed as the text it is


def test_a_value_failing_a_check_is_not_resolved_into_the_error():
    """The red team's: the resolved secret (it holds '/') failed the run name's check, which printed it."""
    message = assert_refused_without_the_secret(
        lambda: load_config(overrides=[f"storage.experiment={LOOKUP}"]), "storage.experiment", "overrides"
    )
    assert "must be" not in message  # refused as an interpolation before any check echoes a value


@pytest.mark.slow
def test_a_run_never_writes_a_resolved_value_into_its_files_or_logs(tiny_config, tmp_path, caplog):
    """A config that holds `${...}` as text (only code can build one now) trains, and neither its
    config.yaml, manifest, checkpoints nor logs hold what the text would resolve to."""
    from handgesture.training import run_training

    config = tiny_config("train_params.epochs=1")
    config.storage.endpoint_url = LOOKUP  # unused by a local store; written into every saved config
    with caplog.at_level("DEBUG"):
        summary = run_training(config, run_name="text")
    files = [path for path in Path(summary.run_uri).rglob("*") if path.is_file()]
    assert any(path.name == "config.yaml" for path in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    saved = torch.load(summary.last_checkpoint, weights_only=True)["config"]
    assert saved["storage"]["endpoint_url"] == LOOKUP
    assert SECRET not in caplog.text


# 2. A checkpoint's config never decides where data goes.

# A value for each dropped key that differs from the user's default and passes the config checks.
EVIL = {
    "dataset.cache_dir": "/tmp/attacker-cache",
    "dataset.cache_uri": "s3://attacker-bucket/caches",
    "synthetic.generate_if_missing": True,
    "synthetic.hagrid_version": 2,
    "synthetic.per_class": 7,
    "synthetic.users": 3,
    "synthetic.frame_size": [64, 48],
    "train_params.num_workers": 9,
    "train_params.test_batch_size": 3,
    "train_params.prefetch_factor": 5,
    "train_params.log_every_n_steps": 7,
    "train_params.devices": "3",
    "train_params.nnodes": 4,
    "train_params.rdzv_endpoint": "attacker.example:29400",
    "device": "cpu",
    "checkpoint.every_n_steps": 5,
    "checkpoint.every_seconds": 1.0,
    "checkpoint.keep_last": 7,
    "checkpoint.keep_best": 3,
    "checkpoint.resume": "/tmp/attacker/model.pth",
    "checkpoint.resume_mode": "finetune",
    "checkpoint.allow_backbone_reinit": True,
    "storage.uri": "s3://attacker-bucket/runs",
    "storage.experiment": "attacker",
    "storage.run_name": "attacker-run",
    "storage.block": "s3-bucket/attacker",
    "storage.endpoint_url": "https://attacker.example",
    "storage.max_retries": 9,
    "storage.upload_timeout": 5.0,
    "tracking.tensorboard": False,
    "tracking.hparams": ["optimizer.lr"],
    "prepare.dask": "tcp://attacker.example:8786",
    "prepare.shard_size": 1,
}
# What the trust boundary names: never taken, whatever the table is edited to say.
NEVER_TAKEN = [
    *(key for key in schema_keys() if key.split(".")[0] in ("storage", "synthetic", "tracking", "prepare")),
    "dataset.cache_dir",
    "dataset.cache_uri",
    "device",
    "train_params.devices",
    "train_params.nnodes",
    "train_params.rdzv_endpoint",
    "checkpoint.resume",
    "checkpoint.resume_mode",
]


def test_the_table_classifies_every_schema_key():
    assert sorted(CHECKPOINT_KEYS) == sorted(schema_keys())
    assert set(CHECKPOINT_KEYS.values()) == {TAKE, DROP}


@pytest.mark.parametrize("key", NEVER_TAKEN)
def test_storage_cache_endpoint_device_and_resume_keys_are_dropped(key):
    assert CHECKPOINT_KEYS[key] == DROP


def test_every_dropped_key_is_tried_below():
    assert sorted(EVIL) == sorted(key for key, what in CHECKPOINT_KEYS.items() if what == DROP)


@pytest.mark.parametrize("key", sorted(EVIL))
def test_a_dropped_key_of_a_checkpoint_reaches_neither_resume_nor_evaluate(tmp_path, key):
    evil = write_checkpoint(tmp_path / "evil.pth", with_key(to_dict(load_config()), key, EVIL[key]))
    assert not holds(checkpoint_config(torch.load(evil, weights_only=True), evil), key)
    for config in (run_config(None, [], evil), evaluation_config(evil, None, [])):
        assert config_value(config, key) != EVIL[key]


def test_taken_keys_carry_the_model_data_and_recipe(tmp_path):
    theirs = to_dict(load_config())
    for key, value in {
        "optimizer.lr": 0.123,
        "scheduler.cosine": True,
        "train_params.epochs": 4,
        "dataset.dataset": "/data/their-images",
        "dataset.cache_quality": 80,
        "random_state": 7,
    }.items():
        theirs = with_key(theirs, key, value)
    evil = write_checkpoint(tmp_path / "theirs.pth", theirs)
    config = run_config(None, [], evil)
    assert (config.optimizer.lr, config.scheduler.cosine, config.train_params.epochs) == (0.123, True, 4)
    assert (config.dataset.dataset, config.dataset.cache_quality, config.random_state) == (
        "/data/their-images",
        80,
        7,
    )


def test_a_checkpoint_naming_other_storage_leaves_the_users_storage_in_charge(tmp_path):
    """The red team's file: storage, endpoint, block and caches pointed elsewhere."""
    theirs = to_dict(load_config())
    for key in ("storage.uri", "storage.endpoint_url", "storage.block", "dataset.cache_uri"):
        theirs = with_key(theirs, key, EVIL[key])
    evil = write_checkpoint(tmp_path / "evil.pth", theirs)
    mine = [f"storage.uri={tmp_path / 'mine'}"]
    for config in (run_config(None, mine, evil), evaluation_config(evil, None, mine)):
        assert config.storage.uri == str(tmp_path / "mine")
        assert (config.storage.endpoint_url, config.storage.block, config.dataset.cache_uri) == (None,) * 3
    assert run_config(None, [], evil).storage.uri == "runs"  # the user's default, not the file's


@pytest.fixture(scope="module")
def attackers_checkpoint(tiny_dataset, tmp_path_factory):
    """A real checkpoint of a tiny run, saved again with storage and caches in the attacker's folders."""
    from handgesture.training import run_training
    from tests.tiny import tiny_dotlist

    root = tmp_path_factory.mktemp("attacker")
    overrides = [*tiny_dotlist(tiny_dataset), f"storage.uri={root / 'trained'}", "train_params.epochs=1"]
    summary = run_training(load_config("configs/demo.yaml", overrides), run_name="trained")
    checkpoint = torch.load(summary.last_checkpoint, weights_only=True)
    checkpoint["config"]["storage"]["uri"] = str(root / "attacker-runs")
    checkpoint["config"]["dataset"]["cache_uri"] = str(root / "attacker-caches")
    checkpoint["config"]["dataset"]["cache_dir"] = str(root / "attacker-cache-dir")
    torch.save(checkpoint, root / "evil.pth")
    return root


@pytest.mark.slow
def test_resume_from_an_attackers_checkpoint_writes_under_the_users_storage(
    attackers_checkpoint, tmp_path, monkeypatch
):
    from handgesture.training import run_training

    monkeypatch.chdir(tmp_path)  # the user's defaults: ./runs, ./data/cache
    evil = str(attackers_checkpoint / "evil.pth")
    config = run_config(None, ["train_params.epochs=2", "train_params.num_workers=0"], evil)
    summary = run_training(config, resume=evil)
    assert Path(summary.run_uri).resolve().is_relative_to(tmp_path / "runs")
    for folder in ("attacker-runs", "attacker-caches", "attacker-cache-dir"):
        assert not (attackers_checkpoint / folder).exists(), folder


@pytest.mark.slow
def test_evaluate_of_an_attackers_checkpoint_publishes_no_crops_to_its_places(
    attackers_checkpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    evil = str(attackers_checkpoint / "evil.pth")
    assert cli_main(["evaluate", evil, "--out", str(tmp_path / "eval"), "train_params.num_workers=0"]) == 0
    assert (tmp_path / "eval" / "report.json").is_file()
    for folder in ("attacker-runs", "attacker-caches", "attacker-cache-dir"):
        assert not (attackers_checkpoint / folder).exists(), folder


# 3. A dotlist value that is not YAML is one line, exit status 2.


def test_an_override_that_is_not_yaml_is_one_line_naming_its_key():
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["train_params.epochs=3", "optimizer.lr=[1,"])
    message = str(info.value)
    assert "optimizer.lr" in message and "not valid YAML" in message and "\n" not in message


def test_the_evaluate_command_reports_an_override_that_is_not_yaml_with_status_2(tmp_path, capsys):
    assert cli_main(["evaluate", str(tmp_path / "model.pth"), "optimizer.lr=[1,"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "optimizer.lr" in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_the_train_command_reports_an_override_that_is_not_yaml_with_status_2(capsys):
    assert cli_main(["train", "optimizer.lr=[1,"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "optimizer.lr" in err and "Traceback" not in err


def test_a_resume_takes_its_place_from_this_runs_config_file_and_its_recipe_from_the_checkpoint(tmp_path):
    """A deployment resumes with its own config file: the file says where the run goes and what the machine
    is; the checkpoint's recipe wins over the file's; the overrides win over both."""
    theirs = with_key(with_key(to_dict(load_config()), "optimizer.lr", 0.123), "storage.experiment", "theirs")
    evil = write_checkpoint(tmp_path / "theirs.pth", theirs)
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "storage: {uri: s3://my-bucket/runs, experiment: mine}\n"
        "dataset: {cache_dir: /fast/cache}\n"
        "optimizer: {lr: 0.5}\n"
        "train_params: {num_workers: 7}\n"
    )
    config = run_config(str(mine), ["train_params.epochs=9"], evil)
    assert (config.storage.uri, config.storage.experiment) == ("s3://my-bucket/runs", "mine")
    assert (config.dataset.cache_dir, config.train_params.num_workers) == ("/fast/cache", 7)
    assert config.optimizer.lr == 0.123 and config.train_params.epochs == 9
