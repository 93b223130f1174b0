"""The index's fast paths (issue 24: v2's 1.09 M images in seconds) read and key exactly what the plain paths
did: the typed JSON decoder against json + parse_entry, the key's text against json.dumps, the reader's sizes
against a stat per image, slotted samples through pickle."""

import json
import os
import pickle

import pytest

from handgesture.data.annotations import Sample, read_annotations
from handgesture.data.cache import cache_key, cache_settings
from handgesture.data.entries import parse_entry, parse_fields
from handgesture.data.entry_json import decode_entries
from handgesture.data.key_lines import key_chunks, sample_line
from handgesture.errors import DataError
from tests.unit.data.test_annotations import _entry, write_dataset

V2 = {"bboxes": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.1, 0.1]], "labels": ["hand_heart", "hand_heart"],
      "united_bbox": [[0.1, 0.2, 0.5, 0.4], [0.1, 0.2, 0.5, 0.4]], "united_label": ["hand_heart"] * 2,
      "user_id": "p1", "hand_landmarks": [[[0.1, 0.2]] * 21] * 2,
      "meta": {"age": [30.5], "gender": ["female"], "race": ["White"]}}  # fmt: skip
ENTRIES = [
    V2,
    {**V2, "united_bbox": None, "united_label": None},
    {k: v for k, v in V2.items() if k not in ("united_bbox", "united_label")},
    _entry([[0.1, 0.2, 0.3, 0.4], [0, 1, 2, 3]], ["like", "no_gesture"], "left"),
    {**V2, "bboxes": [[1, 2, 3, 4.5e-300], [-0.0, 1e300, 1e300, 5]]},  # ints, extremes, an overflowing sum
]
BAD = [
    {"labels": [], "user_id": "u"},  # missing key
    {**V2, "user_id": ""},
    {**V2, "bboxes": [[0.1, 0.2, 0.3, True], [0, 0, 1, 1]]},  # a bool is no number
    {**V2, "bboxes": [[0.1, 0.2, 0.3, "0.4"], [0, 0, 1, 1]]},
    {**V2, "united_label": ["hand_heart", None]},
    {**V2, "leading_hand": "up"},
]


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_typed_decoder_parses_what_json_and_parse_entry_parse(entry):
    fast = decode_entries(json.dumps({"img": entry}).encode())
    assert parse_fields(fast["img"], "w") == parse_entry(entry, "w")


@pytest.mark.parametrize("entry", BAD)
def test_the_typed_decoder_fails_with_parse_entrys_own_message(entry):
    fast = decode_entries(json.dumps({"img": entry}).encode())
    with pytest.raises(DataError) as plain:
        parse_entry(entry, "w")
    with pytest.raises(DataError) as typed:
        parse_fields(fast["img"], "w")
    assert str(typed.value) == str(plain.value)


@pytest.mark.parametrize(
    "text",
    [b'{"a": [1]}', b"[1]", b'{"a": {"bboxes": [NaN]}}', b'\xef\xbb\xbf{"a": {}}',
     b'{"a": {"user_id": "\xff"}}', b'{"a": {"user_id": "\\ud800"}}',
     b'{"a": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}", b'{"a": {}} x'],
)  # fmt: skip
def test_what_the_typed_decoder_refuses_is_left_to_json(text):
    assert decode_entries(text) is None


def test_a_file_the_typed_decoder_refuses_reads_as_before(tmp_path):
    ann, data = write_dataset(tmp_path, {"like": {"a": _entry([[0.1, 0.2, 0.3, 0.4]], ["like"])}})
    (ann / "like.json").write_text(
        '{"a": {"bboxes": [[0.1, 0.2, NaN, 0.4]], "labels": ["like"], "user_id": "u"}}'
    )
    with pytest.raises(DataError, match=r"bbox 0 must be 4 finite numbers"):
        read_annotations(ann, data, ["like"])
    (ann / "like.json").write_text('{"a": [1]}')
    with pytest.raises(DataError, match=r"expected an object, got list"):
        read_annotations(ann, data, ["like"])


@pytest.mark.parametrize(
    "fields",
    [("like/a.jpg", (0.1, 0.2, 0.3, 0.4), 3, -1, "u1", 1234),
     ("like/\u00e9\"\\.jpg", (-0.0, 1e-300, 1e300, 0.30000000000000004), 0, 1, "\u4eba\n", "etag:\"x\":12"),
     ("like/a.jpg", (0, 1, 2, 3), 2, 0, "u", -1),  # ints in a box: json.dumps itself
     ("like/a.jpg", (float("nan"), 0.0, 1.0, 1.0), True, 0, "u", 2**70)],
)  # fmt: skip
def test_a_samples_key_text_is_json_dumps_byte_for_byte(fields):
    name, box, *rest = fields
    assert sample_line(name, box, *rest) == json.dumps([name, list(box), *rest])


def test_the_key_with_the_readers_sizes_is_the_key_with_a_stat_per_image(tmp_path):
    two = _entry([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.1, 0.1]], ["like", "no_gesture"])
    ann, data = write_dataset(tmp_path, {
        "like": {f"i{n}": two for n in range(5)},
        "one": {"j": _entry([[0.1, 0.2, 0.3, 0.4]], ["one"], user="\u00e9")},
    })  # fmt: skip
    os.symlink(
        data / "one" / "j.jpg", data / "like" / "link.jpg"
    )  # a link inside the dataset: its target's size
    entries = {
        **json.loads((ann / "like.json").read_text()),
        "link": _entry([[0.1, 0.2, 0.3, 0.4]], ["like"]),
    }
    (ann / "like.json").write_text(json.dumps(entries))
    found = read_annotations(ann, data, ["like", "one", "no_gesture"])
    assert len(found.sizes) == len(found.samples) == 12
    assert list(found.sizes) == [os.stat(s.image).st_size for s in found.samples]
    files, settings = sorted(ann.glob("*.json")), cache_settings((32, 32))
    assert cache_key(found.samples, settings, files, ["like"], found.sizes) == cache_key(
        found.samples, settings, files, ["like"]
    )


def test_the_keys_text_is_what_json_dumps_wrote_per_sample(tmp_path):
    samples = [
        Sample(str(tmp_path / "like" / f"{n}.jpg"), (0.1 * n, 0.2, 0.3, 0.4), n, -1, "u") for n in range(3)
    ]
    lines = [
        json.dumps([f"like/{n}.jpg", list(s.box), s.gesture, -1, "u", -1]) for n, s in enumerate(samples)
    ]
    assert b"".join(key_chunks(samples)) == "".join(lines).encode()  # -1: the images do not exist


def test_slotted_samples_pickle_hash_and_compare_as_before():
    sample = Sample("/d/like/a.jpg", (0.1, 0.2, 0.3, 0.4), 1, 0, "u")
    back = pickle.loads(pickle.dumps(sample))
    assert back == sample and hash(back) == hash(sample) and {sample: 1}[back] == 1
    with pytest.raises(AttributeError):
        sample.gesture = 2


V2_MORE = [
    {**V2, "united_bbox": [None, None], "united_label": ["x", None]},  # labels where no united box: ignored
    {**V2, "bboxes": [[-0, 1, 0.5, 0.5], [0.2, 0.2, 2, 0.1]], "united_bbox": [None, [0.1, 0.1, 0.5, 0.5]]},
    {**V2, "labels": ["peace", "no_gesture"], "united_bbox": [], "united_label": []},  # [] reads as nulls
    {**V2, "united_bbox": [[0.1, 0.2, 0.5, 0.4], [0.1, 0.2, 0.5, 0.41]]},  # two united boxes, both kept
    {**_entry([[0.1, 0.2, 0.3, 0.4]], ["like"], "left"), "united_bbox": "not read in v1"},
]
V2_BAD = [
    {**V2, "united_bbox": [None, [0.1, 0.2, 0.5, 0.4]], "united_label": None},
    {**V2, "united_bbox": [None]},
    {**V2, "labels": ["like"]},
    {**V2, "bboxes": [[0.1, 0.2, 0.3, 1e400], [0, 0, 1, 1]]},
    {**V2, "leading_hand": None},
    {**V2, "user_id": None},
]


def _read_both_ways(tmp_path, monkeypatch, entries: dict, full_frame: bool = False, text: str = ""):
    """read_annotations' result (or error) with the typed decoder, then with every file sent to the
    checked path, as (samples, sizes, missing, notes) or the error's text. ``text``: the file's own."""
    ann, data = write_dataset(tmp_path, {"like": entries})
    if text:
        (ann / "like.json").write_text(text)

    def read():
        try:
            found = read_annotations(
                ann, data, ["like", "peace", "hand_heart", "no_gesture"], full_frame=full_frame
            )
        except DataError as exc:
            return str(exc)
        return found.samples, list(found.sizes), found.missing_images, found.notes

    typed = read()
    monkeypatch.setattr("handgesture.data.index_plain.decode_plain", lambda data: None)
    return typed, read()


@pytest.mark.parametrize("full_frame", [False, True])
@pytest.mark.parametrize("entry", [*ENTRIES, *V2_MORE])
def test_the_typed_path_reads_what_the_checked_path_reads(tmp_path, monkeypatch, entry, full_frame):
    typed, checked = _read_both_ways(tmp_path, monkeypatch, {"a": entry, "b": V2}, full_frame)
    assert typed == checked
    assert not isinstance(typed, str)


@pytest.mark.parametrize("entry", [*BAD, *V2_BAD])
def test_a_file_with_any_other_entry_fails_with_the_checked_paths_message(tmp_path, monkeypatch, entry):
    text = json.dumps({"a": V2, "b": entry}).replace("Infinity", "1e400")  # a literal too large
    typed, checked = _read_both_ways(tmp_path, monkeypatch, {"a": V2, "b": entry}, text=text)
    assert typed == checked
    assert isinstance(typed, str) and "'b'" in typed
