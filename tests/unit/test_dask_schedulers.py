"""`prepare.dask` names a Dask scheduler the worker's process connects to as a client: it sends the run's
config and tasks there and unpickles what comes back. So a scheduler is used only when the machine's
operator lists it in HANDGESTURE_DASK_SCHEDULERS; an override or config file alone is refused before a run
folder, a cache or a connection exists. (The flow's own refusal and a listed scheduler's use, against a real
cluster: tests/flow/test_prepare_dask.py.)"""

import socket

import pytest

from handgesture.config import load_config
from handgesture.config_checks import DASK_SCHEDULERS_ENV, _usable_cores
from handgesture.errors import ConfigError

EVIL = "tcp://attacker.example:8786"


@pytest.fixture(autouse=True)
def no_allow_list(monkeypatch):
    monkeypatch.delenv(DASK_SCHEDULERS_ENV, raising=False)


@pytest.fixture
def listener():
    """A socket listening on 127.0.0.1 that no test expects to be connected to: a connection attempt
    would sit in its backlog, so `accept` finds it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock, f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def _never_connected(sock) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def _refusal(error: ConfigError, address: str) -> None:
    message = str(error)
    assert message.startswith(f"prepare.dask={address!r} is not in {DASK_SCHEDULERS_ENV}")
    assert "\n" not in message and "add" in message


def test_a_scheduler_from_an_override_is_refused_naming_the_key_and_the_allow_list():
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"prepare.dask={EVIL}"])
    _refusal(info.value, EVIL)


def test_a_scheduler_from_a_config_file_is_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text(f"prepare:\n  dask: {EVIL}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    _refusal(info.value, EVIL)


def test_only_the_exact_addresses_listed_are_allowed_and_the_list_is_never_shown(monkeypatch):
    monkeypatch.setenv(DASK_SCHEDULERS_ENV, f" tcp://internal-scheduler.svc:8786 , {EVIL}")
    assert load_config(None, [f"prepare.dask={EVIL}"]).prepare.dask == EVIL
    for other in (
        "tcp://attacker.example:8787",
        "tls://attacker.example:8786",
        "tcp://internal-scheduler:8786",
    ):
        with pytest.raises(ConfigError) as info:
            load_config(None, [f"prepare.dask={other}"])
        _refusal(info.value, other)
        assert "internal-scheduler.svc" not in str(info.value)


def test_local_workers_are_allowed_up_to_this_processes_cores():
    cores = _usable_cores()
    assert load_config(None, [f"prepare.dask=local:{cores}"]).prepare.dask == f"local:{cores}"
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"prepare.dask=local:{cores + 1}"])
    assert str(info.value).startswith(f"prepare.dask=local:{cores + 1} starts {cores + 1} worker processes")
    assert f"expected local:1 .. local:{cores}" in str(info.value)


@pytest.mark.parametrize("command", ["train", "prepare"])
def test_the_commands_exit_2_before_writing_or_connecting(tmp_path, capsys, listener, command):
    from handgesture_cli.main import main

    sock, address = listener
    argv = [f"dataset.cache_dir={tmp_path / 'cache'}", f"prepare.dask={address}"]
    if command == "train":
        argv = ["--config", "configs/demo.yaml", "--storage", str(tmp_path / "runs"), *argv]
    assert main([command, *argv]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith(f"error: prepare.dask={address!r} is not in {DASK_SCHEDULERS_ENV}")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
    assert _never_connected(sock)
