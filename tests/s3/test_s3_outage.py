"""An S3 outage in the middle of a run: training goes on, uploads catch up once it is back, nothing is lost.

A TCP proxy stands between the store and the real moto server, so the outage is real on the network
(connections refused) while the server keeps the objects uploaded before it.
"""

import hashlib
import json
import logging
import socket
import threading

import boto3
import pytest

from handgesture.training import run_training

pytestmark = [pytest.mark.s3, pytest.mark.slow]


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port; `stop()` refuses and cuts connections until `start()`."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._serve()

    def _serve(self):
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() call, so the port is free again
        self.listener.close()
        for connection in self.connections:
            connection.close()
        self.connections = []

    def start(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self._serve()


class Recorder(logging.Handler):
    """Collects the uploader's messages (they come from its own thread)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_outage_mid_run_training_goes_on_and_uploads_catch_up(s3_env, s3_bucket, tiny_config):
    proxy = TcpProxy(int(s3_env.endpoint_url.rsplit(":", 1)[1]))
    endpoint = f"http://127.0.0.1:{proxy.port}"
    outage = {}

    def on_epoch(progress, _metrics):
        if progress.epoch == 1:  # epoch 1 is committed; cut the network for a few seconds of epoch 2
            proxy.stop()
            outage["timer"] = threading.Timer(4.0, proxy.start)
            outage["timer"].start()

    config = tiny_config(
        f"storage.uri=s3://{s3_bucket}/runs",
        f"storage.endpoint_url={endpoint}",
        "storage.max_retries=0",
        "checkpoint.every_n_steps=4",
        "checkpoint.keep_last=100",
        "storage.upload_timeout=120",
    )
    waits = Recorder()
    logging.getLogger("handgesture.checkpoints.uploader").addHandler(waits)
    try:
        result = run_training(config, run_name="outage", on_epoch=on_epoch)
    finally:
        logging.getLogger("handgesture.checkpoints.uploader").removeHandler(waits)
    outage["timer"].join()
    assert any("waits for storage" in message for message in waits.messages)  # the outage was really hit

    client = boto3.client("s3", endpoint_url=s3_env.endpoint_url)
    prefix = "runs/demo/outage/"
    manifest = json.loads(client.get_object(Bucket=s3_bucket, Key=prefix + "manifest.json")["Body"].read())
    assert manifest["checkpoints"][-1]["epoch"] == 2  # the manifest reached S3 after the outage
    assert len(manifest["checkpoints"]) >= 6  # every step checkpoint of both epochs, none dropped
    for entry in manifest["checkpoints"] + [manifest["best"]]:
        body = client.get_object(Bucket=s3_bucket, Key=prefix + entry["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], entry["key"]
    assert result.last_checkpoint.endswith(manifest["checkpoints"][-1]["key"])
