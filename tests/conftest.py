"""Shared test set-up: quiet, isolated Prefect settings before anything imports prefect."""

import os
import tempfile

_PREFECT_HOME = tempfile.mkdtemp(prefix="handgesture-prefect-home-")
os.environ.update(
    {
        "PREFECT_HOME": _PREFECT_HOME,
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
)

import pytest  # noqa: E402

pytest_plugins = ["tests.s3_fixtures", "tests.stores"]


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test API for the whole session (starting one costs about 20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small synthetic HaGRID-format dataset shared by the tests that train."""
    from handgesture.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("tiny-hagrid")
    return generate_synthetic(root, per_class=8, users=5, frame_size=(160, 120), seed=3)


@pytest.fixture
def tiny_overrides(tiny_dataset, tmp_path):
    """Dotlist overrides that make a run train in seconds on 2 cores, into tmp_path/runs."""
    from tests.tiny import tiny_dotlist

    return [*tiny_dotlist(tiny_dataset), f"storage.uri={tmp_path / 'runs'}"]


@pytest.fixture
def tiny_config(tiny_overrides):
    """A config that trains in seconds on 2 cores; pass dotlist overrides to adjust."""
    from handgesture.config import load_config

    def make(*overrides: str):
        return load_config("configs/demo.yaml", tiny_overrides + list(overrides))

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny model trained for an epoch on data with a test split: what evaluate, predict and export use.

    Returns the run's summary and the dotlist overrides it was trained with."""
    from handgesture.config import load_config
    from handgesture.data.synthetic import generate_synthetic
    from handgesture.training import run_training
    from tests.tiny import tiny_dotlist

    root = tmp_path_factory.mktemp("trained")
    data = generate_synthetic(
        root / "data", per_class=6, users=4, frame_size=(160, 120), seed=5, test_per_class=3
    )
    overrides = [
        *tiny_dotlist(data),
        f"dataset.test_annotations={data['test_annotations']}",
        f"storage.uri={root / 'runs'}",
        "train_params.epochs=1",
    ]
    return run_training(load_config("configs/demo.yaml", overrides), run_name="trained"), overrides
