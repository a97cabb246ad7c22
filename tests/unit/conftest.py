"""What the moto-based unit tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.template import create_tables


@pytest.fixture
def aws(push_env: dict[str, str]) -> Iterator[Any]:
    """moto, with the records and quarantine tables of this test created: the client."""
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(
            client, {"CallRecordsTable": push_env["TABLE_NAME"], "QuarantineTable": push_env["QUARANTINE_TABLE_NAME"]}
        )
        yield client


@pytest.fixture
def deployed() -> Iterator[Any]:
    """A deployed stack as the CLI sees it, on moto, with a push API on loopback
    (:class:`tests.unit.test_cli.Deployed`)."""
    from tests.unit.test_cli import Deployed, PushApi

    api = PushApi()
    with mock_aws():
        yield Deployed(api)
    api.server.shutdown()
    api.server.server_close()
