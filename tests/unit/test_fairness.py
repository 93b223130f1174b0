"""Fair evaluation: per-group gesture F1, counts and the widest gap, computed by hand on a small split whose
loader skipped an unreadable image, so predictions must be matched to samples by index, not by order."""

import json

import pytest
import torch

from handgesture.data.annotations import Sample
from handgesture.data.people import read_meta
from handgesture.fairness import (
    PredictionRecorder,
    fairness_markdown,
    fairness_section,
    fairness_summary,
    widest_gap,
)

PEOPLE = {
    "a": {"age": [25.0], "gender": ["female"], "race": ["White"]},
    "b": {"age": [40.0], "gender": ["male"], "race": ["Black"]},
    "c": {"age": [20.0, 50.0], "gender": ["female", "female"], "race": ["White", "White"]},  # two people
    "d": {"age": [60.0], "gender": ["male"], "race": ["Asian"]},
    "e": None,  # no meta
}
# index: (image, target, prediction); index 2's image is unreadable: the loader leaves it out of its batch.
ROWS = {0: ("a", 0, 0), 1: ("a", 1, 1), 2: ("b", 2, 1), 3: ("b", 0, 0), 4: ("c", 2, 1), 5: ("d", 1, 0),
        6: ("e", 2, 2)}  # fmt: skip
BATCHES = [[0, 1], [3, 4, 5, 6]]


@pytest.fixture
def split(tmp_path):
    """The annotation file, the dataset's samples (in order) and the recorded evaluation pass."""
    ann = tmp_path / "ann"
    ann.mkdir()
    entry = {"bboxes": [], "labels": [], "user_id": "u"}
    entries = {i: {**entry, **({"meta": m} if m else {})} for i, m in PEOPLE.items()}
    (ann / "like.json").write_text(json.dumps(entries))
    samples = [
        Sample(str(tmp_path / "img" / "like" / f"{image}.jpg"), (0.1, 0.1, 0.2, 0.2), target, -1, "u")
        for image, target, _ in ROWS.values()
    ]
    recorder = PredictionRecorder()
    for indices in BATCHES:
        predicted = torch.tensor([ROWS[i][2] for i in indices])
        batch = {"index": torch.tensor(indices), "gesture": torch.tensor([ROWS[i][1] for i in indices])}
        recorder(batch, {"gesture": torch.nn.functional.one_hot(predicted, 3).float()})
    return read_meta(ann, [s.image for s in samples]), samples, recorder


def _scores(section, attribute):
    return [
        (r["group"], r["count"], pytest.approx(r["f1_score"]))
        for r in section["attributes"][attribute]["groups"]
    ]


def test_per_group_f1_counts_and_gaps_by_hand(split):
    section = fairness_section(*split, num_classes=3, average="weighted")
    assert section["samples"] == 6 and section["average"] == "weighted"
    # female: 0, 1, 4 (frame c: two women) -> targets 0 1 2, predicted 0 1 1: F1 1, 2/3, 0 -> 5/9
    # male: 3, 5 -> targets 0 1, predicted 0 0: F1 2/3 (class 0), 0 (class 1) -> 1/3; e: no meta
    assert _scores(section, "gender") == [("female", 3, 5 / 9), ("male", 2, 1 / 3)]
    gender = section["attributes"]["gender"]
    assert gender["unattributed"] == 1
    assert gender["gap"] == {"f1_score": pytest.approx(2 / 9), "highest": "female", "lowest": "male"}
    # race: frame c is White twice, so White
    assert _scores(section, "race") == [("Asian", 1, 0.0), ("Black", 1, 1.0), ("White", 3, 5 / 9)]
    assert section["attributes"]["race"]["gap"] == {"f1_score": 1.0, "highest": "Black", "lowest": "Asian"}
    # age: frame c holds a 20 and a 50 year old (unattributed), e none; youngest band first
    assert _scores(section, "age") == [("18-30", 2, 1.0), ("31-45", 1, 1.0), ("46+", 1, 0.0)]
    age = section["attributes"]["age"]
    assert age["unattributed"] == 2
    assert age["gap"] == {"f1_score": 1.0, "highest": "18-30", "lowest": "46+"}


def test_the_unreadable_samples_person_counts_nowhere(split):
    """Index 2 (b, male) was skipped: matched by order, rows would shift onto the wrong people."""
    section = fairness_section(*split, num_classes=3, average="micro")
    assert _scores(section, "gender") == [("female", 3, 2 / 3), ("male", 2, 1 / 2)]
    assert sum(r["count"] for r in section["attributes"]["race"]["groups"]) == 5


def test_without_meta_there_is_no_section(split):
    _, samples, recorder = split
    assert fairness_section({}, samples, recorder, num_classes=3, average="weighted") is None
    assert fairness_markdown(None) == []


def test_a_gap_names_two_groups_even_when_they_tie_and_needs_two():
    rows = [{"group": "x", "count": 1, "f1_score": 0.5}, {"group": "y", "count": 9, "f1_score": 0.5}]
    assert widest_gap(rows) == {"f1_score": 0.0, "highest": "x", "lowest": "y"}
    assert widest_gap(rows[:1]) is None


def test_the_markdown_and_the_summary_are_rounded_tables(split):
    section = fairness_section(*split, num_classes=3, average="weighted")
    text = "\n".join(fairness_markdown(section))
    assert "### gender\n\n| group | count | F1 |\n| --- | --- | --- |\n| female | 3 | 0.5556 |" in text
    assert "| male | 2 | 0.3333 |\n\nwidest gap: 0.2222 (female over male); 1 samples unattributed" in text
    assert "### age" in text and "| 46+ | 1 | 0.0000 |" in text
    summary = fairness_summary(section)
    assert summary["gender"] == {
        "groups": {"female": [3, 0.5556], "male": [2, 0.3333]},
        "unattributed": 1,
        "gap": [0.2222, "female", "male"],
    }
