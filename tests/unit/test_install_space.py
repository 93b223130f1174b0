"""The first install's disk check (scripts/check_install_space.py), which the Makefile runs before pip."""

import importlib.util
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_install_space.py"


def _load_check():
    spec = importlib.util.spec_from_file_location("check_install_space", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_disk_with_room_passes():
    assert _load_check().main() == 0


def test_a_disk_without_room_is_one_message_naming_the_folder_and_the_room_needed(monkeypatch, capsys):
    check = _load_check()
    monkeypatch.setattr(check, "NEEDED_GB", {".": 1e9, tempfile.gettempdir(): 1e9})
    assert check.main() == 2
    message = capsys.readouterr().err
    assert message.startswith("not enough disk space for .venv and the pinned dependencies:")
    assert "GB free, the install needs about" in message and "." in message
