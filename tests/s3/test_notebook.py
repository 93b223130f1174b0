"""examples/notebook.ipynb, executed for real (nbclient, a Python kernel) on tiny models: from a run folder,
from an s3:// URI and from a prefect:// reference to a flow run that trained into the bucket."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.tiny import tiny_dotlist

pytestmark = [pytest.mark.s3, pytest.mark.slow]
NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook.ipynb"


def test_the_notebook_runs_on_a_run_an_s3_uri_and_a_prefect_reference(
    prefect_harness, trained_run, tiny_dataset, s3_env, s3_bucket, monkeypatch
):
    from flows.train import train_hand_gesture_classifier
    from prefect.settings import PREFECT_API_URL

    state = train_hand_gesture_classifier(
        config="configs/demo.yaml",
        overrides=[
            *tiny_dotlist(tiny_dataset),
            "train_params.epochs=1",
            f"storage.endpoint_url={s3_env.endpoint_url}",
        ],
        storage=f"s3://{s3_bucket}/runs",
        return_state=True,
    )
    in_s3 = state.result()
    ref = f"prefect://flow-runs/{state.state_details.flow_run_id}/best"
    for name, value in {
        "HANDGESTURE_RUN": trained_run[0].run_uri,
        "HANDGESTURE_S3_URI": in_s3.best_checkpoint,
        "HANDGESTURE_S3_ENDPOINT": s3_env.endpoint_url,
        "HANDGESTURE_PREFECT_REF": ref,
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the kernel reaches this test's Prefect API
    }.items():
        monkeypatch.setenv(name, value)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    text = "\n".join(_texts(notebook))
    assert f"epoch 1, from {trained_run[0].last_checkpoint}" in text  # a run folder: its newest checkpoint
    assert f"{in_s3.best_checkpoint}: MobileNetV3_small" in text
    assert f"{ref} -> {in_s3.best_checkpoint}" in text
    assert text.count(" -> ") >= 8 + 1  # eight predictions, and the reference line
    images = [
        o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 2  # the crops with their predictions, and the confusion matrix
    assert "split" in text and "f1_score" in text
    assert os.getcwd() != str(NOTEBOOK.parent)  # the kernel changed its own directory, not this process's


def _texts(notebook) -> list[str]:
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                yield output["text"]
            elif "text/plain" in output.get("data", {}):
                yield output["data"]["text/plain"]
