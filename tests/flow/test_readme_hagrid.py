"""The README's "Your own HaGRID" v1 commands, run as printed: a first run on HaGRID v1's folders, then a
HaGRID checkpoint and HaGRID's own config file. Only the data folders are swapped for the tiny test dataset,
and test-only settings (no loader worker processes, batches that fit the tiny split, storage in tmp) are
appended (tests/readme.py)."""

import pytest

from tests.hagrid import HAGRID_CONFIG, hagrid_config, write_hagrid_checkpoint
from tests.readme import commands, substitute, tiny

pytestmark = pytest.mark.slow


def test_the_hagrid_section_runs_as_printed(prefect_harness, tiny_dataset, tmp_path, monkeypatch, capsys):
    from handgesture_cli.main import main as handgesture

    from tests.commands import train

    monkeypatch.chdir(tmp_path)
    (tmp_path / "hagrid/classifier/config").mkdir(parents=True)
    (tmp_path / "hagrid/classifier/config/default.yaml").write_text(HAGRID_CONFIG.read_text())
    (tmp_path / "experiments/MobileNetV3_small").mkdir(parents=True)
    checkpoint = tmp_path / "experiments/MobileNetV3_small/best_model.pth"
    write_hagrid_checkpoint(checkpoint, "MobileNetV3_small", epoch=18, config=hagrid_config(), size=224)
    data = {
        "/data/hagrid/ann_train_val": tiny_dataset["annotations"],
        "/data/hagrid/images": tiny_dataset["dataset"],
        "/data/hagrid/ann_test": tiny_dataset["annotations"],  # the tiny set's own people, as a test split
        "/mnt/checkpoints": str(tmp_path / "checkpoints"),
    }
    test_only = [
        "train_params.num_workers=0",
        "train_params.train_batch_size=8",
        f"storage.uri={tmp_path / 'runs'}",
    ]

    first, inspect, resume, finetune = [substitute(c, data) for c in commands("Your own HaGRID")]
    assert first[:2] == ["python", "flows/train.py"]
    own = train(first[2:] + tiny(first))
    assert own.run_uri.startswith(str(tmp_path / "checkpoints" / "handgesture"))
    assert "test/gesture/f1_score" in own.metrics
    assert inspect[:2] == ["handgesture", "inspect"] and handgesture(inspect[1:]) == 0
    assert '"model_name": "MobileNetV3_small"' in capsys.readouterr().out
    assert resume[:2] == ["python", "flows/train.py"]
    continued = train(resume[2:] + test_only)
    assert continued.resumed_from == str(checkpoint) and continued.epochs == 20
    assert [row["epoch"] for row in continued.history] == [20]  # HaGRID finished epochs 1-19 (its index 18)
    tuned = train(finetune[2:] + test_only)
    assert tuned.epochs == 3 and tuned.finetune_skipped == [
        "gesture_classifier.3.bias",
        "gesture_classifier.3.weight",
    ]
