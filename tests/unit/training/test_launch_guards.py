"""The data-parallel launch refuses, before any rank starts, what would only cost memory or hang.

More CPU ranks than this process's cores, and a rendezvous endpoint whose port another service holds (torch's
store client would wait on it forever, in C++, deaf to SIGTERM).
"""

import re
import socket
import threading
from datetime import timedelta

import pytest
from torch.distributed import TCPStore

from handgesture.errors import ConfigError
from handgesture.training import distributed, run_training
from handgesture.training.distributed import check_rendezvous, usable_cores


@pytest.mark.parametrize(
    "devices", [lambda cores: cores + 1, lambda cores: 100_000], ids=["cores+1", "100000"]
)
def test_more_cpu_ranks_than_cores_are_refused_before_a_rank_starts(tiny_config, devices, monkeypatch):
    def launched(*_args, **_kwargs):
        raise AssertionError("the ranks were launched")  # never 100000 processes, should the guard go

    monkeypatch.setattr(distributed, "elastic_launch", launched)
    count = devices(usable_cores())
    config = tiny_config(f"train_params.devices={count}", "device=cpu")
    with pytest.raises(ConfigError, match=rf"train_params.devices={count} on CPU, .* expected at most"):
        run_training(config)


class Service:
    """A TCP service on a free 127.0.0.1 port that accepts connections and says `greeting` (or nothing)."""

    def __init__(self, greeting: bytes):
        self.greeting = greeting
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)  # so that serve() sees `stopped` between accepts
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)
            if self.greeting:
                conn.sendall(self.greeting)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        for conn in self.accepted:  # frees the launcher's check, still waiting on a silent connection
            conn.close()
        self.server.close()


@pytest.fixture(params=[b"", b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4], ids=["silent", "garbage"])
def other_service(request):
    service = Service(request.param)
    yield service
    service.close()


# The thread method: today's hang is in C++, where the signal method's alarm would never be handled.
@pytest.mark.timeout(60, method="thread")
def test_a_rendezvous_port_held_by_another_service_fails_in_seconds_naming_it(tiny_config, other_service):
    endpoint = f"127.0.0.1:{other_service.port}"
    config = tiny_config("train_params.devices=2", "device=cpu", f"train_params.rdzv_endpoint={endpoint}")
    with pytest.raises(
        ConfigError, match=re.escape(f"train_params.rdzv_endpoint={endpoint}: a service there")
    ):
        run_training(config)


@pytest.mark.timeout(60, method="thread")
def test_a_c10d_store_or_a_free_port_passes_the_rendezvous_check():
    store = TCPStore("127.0.0.1", 0, is_master=True, multi_tenant=True, timeout=timedelta(seconds=10))
    check_rendezvous(f"127.0.0.1:{store.port}")  # node 0's store, as a later node finds it
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    check_rendezvous(f"127.0.0.1:{free}")  # nothing there yet: node 0 will host it
    with pytest.raises(ConfigError, match=r"train_params.rdzv_endpoint='127.0.0.1:http': expected host:port"):
        check_rendezvous("127.0.0.1:http")
