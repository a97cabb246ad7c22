"""S3 on this machine: moto's server (the S3 API over HTTP on loopback), for
``make local`` and the tests that follow a recording from a push to its object."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from .dynamodb_local import free_port


class LocalS3:
    """``separate_process``: the server in a process of its own, so that what it stores
    is not counted in this one's memory (the bench measures the archiver's)."""

    def __init__(self, port: int | None = None, *, separate_process: bool = False) -> None:
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._separate = separate_process
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto ignores credentials
        )

    def start(self) -> LocalS3:
        if self._separate:
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
            self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                        return self
                time.sleep(0.1)
            self.stop()
            raise RuntimeError("moto's S3 server did not start")
        # werkzeug logs every request at INFO: the stack's own lines say what matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            return
        self._server.stop()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
