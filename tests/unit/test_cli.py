import json

from handgesture.cli import main
from handgesture.data.annotations import read_annotations
from handgesture.labels import HAGRID_TARGETS


def test_synth_command_writes_a_hagrid_format_dataset(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "out"), "--per-class", "2", "--users", "3"]) == 0
    written = json.loads(capsys.readouterr().out)
    found = read_annotations(written["annotations"], written["dataset"], HAGRID_TARGETS)
    assert len({s.user_id for s in found.samples}) == 3
    assert found.missing_images == 0


def test_inspect_reports_bad_input_in_one_line_with_status_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.pth" in err and "Traceback" not in err


def test_synth_command_writes_hagrid_v2(tmp_path, capsys):
    from handgesture.labels import HAGRID_V2_TARGETS

    args = ["synth", str(tmp_path / "v2"), "--per-class", "1", "--users", "2", "--hagrid-version", "2"]
    assert main(args) == 0
    written = json.loads(capsys.readouterr().out)
    found = read_annotations(written["annotations"], written["dataset"], HAGRID_V2_TARGETS)
    assert {s.leading_hand for s in found.samples} == {-1} and len(found.samples) >= len(HAGRID_V2_TARGETS)


def test_synth_reports_bad_arguments_in_one_line_with_status_2(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "out"), "--per-class", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "per_class" in err and "Traceback" not in err
