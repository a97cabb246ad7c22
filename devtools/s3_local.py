"""S3 on this machine: moto's server (the S3 API over HTTP on loopback), for
``make local`` and the tests that follow a recording from a push to its object."""

from __future__ import annotations

import logging
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from .dynamodb_local import free_port


class LocalS3:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

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
        # werkzeug logs every request at INFO: the stack's own lines say what matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
