"""Who a sample belongs to: HaGRID v2's `meta` (one value per person in the frame) read from the annotation
files, and the attribution rule (one person, or people who agree; else unattributed)."""

import json

import pytest

from handgesture.data.people import age_band, group_of, groups_of, read_meta


@pytest.mark.parametrize(
    ("age", "band"),
    [(17.9, "under 18"), (0, "under 18"), (18, "18-30"), (30.99, "18-30"), (31, "31-45"), (45.5, "31-45"),
     (46.0, "46+"), (87.2, "46+"), (True, None), ("30", None), (float("nan"), None), (None, None)],
)  # fmt: skip
def test_age_bands_hold_the_whole_years_and_unusable_ages_have_none(age, band):
    assert age_band(age) == band


def test_one_person_in_the_frame_is_every_samples_person():
    meta = {
        "age": [24.41],
        "gender": ["female"],
        "race": ["White"],
    }  # v2's own example: two boxes, one person
    assert groups_of(meta) == {"gender": "female", "race": "White", "age": "18-30"}


def test_people_who_agree_share_their_group_and_others_are_unattributed_attribute_by_attribute():
    two_women = {"age": [25.0, 40.0], "gender": ["female", "female"], "race": ["Asian", "White"]}
    assert groups_of(two_women) == {"gender": "female", "race": None, "age": None}
    same_band = {"age": [19.0, 30.5], "gender": ["female", "male"], "race": ["Black", "Black"]}
    assert groups_of(same_band) == {"gender": None, "race": "Black", "age": "18-30"}


@pytest.mark.parametrize(
    "meta",
    [None, [], "female", {}, {"age": [], "gender": [], "race": []},
     {"age": 30, "gender": "male", "race": "x"}, {"age": [None], "gender": [""], "race": [3]},
     {"age": [30.0, None], "gender": ["male", 1], "race": [None]}],
)  # fmt: skip
def test_missing_empty_or_malformed_meta_leaves_the_sample_unattributed(meta):
    assert groups_of(meta) == {"gender": None, "race": None, "age": None}


def test_group_of_reads_one_attribute():
    assert group_of("gender", ["male", "male", "male"]) == "male"
    assert group_of("age", [50.0, 61.3]) == "46+"
    assert group_of("race", ["White", "Asian"]) is None


def test_meta_is_read_by_image_name_from_the_files_the_images_came_from(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    entry = {"bboxes": [], "labels": [], "user_id": "u"}
    (ann / "like.json").write_text(json.dumps({
        "a": {**entry, "meta": {"age": [30.0], "gender": ["male"], "race": ["Black"]}},
        "b": entry,  # no meta: absent from the result
        "c": {**entry, "meta": {"age": [50.0], "gender": ["female"], "race": ["White"]}},  # not evaluated
    }))  # fmt: skip
    (ann / "palm.json").write_text("not json: never read, no image of it is evaluated")
    images = [str(tmp_path / "img" / "like" / name) for name in ("a.jpg", "b.jpg", "a.jpg")]
    assert read_meta(ann, images) == {"like/a.jpg": {"age": [30.0], "gender": ["male"], "race": ["Black"]}}


def test_annotations_without_meta_give_nothing(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    v1 = {"bboxes": [[0.1, 0.1, 0.2, 0.2]], "labels": ["like"], "leading_hand": "left", "user_id": "u"}
    (ann / "like.json").write_text(json.dumps({"a": v1}))
    assert read_meta(ann, [str(tmp_path / "img" / "like" / "a.jpg")]) == {}
