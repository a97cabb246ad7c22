"""DynamoDB Local (the real engine) for every test in this folder, with tables built
from template.yaml so that the tests cannot drift from the deployed schema."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.write_rule import RecordWriter

from devtools.dynamodb_local import DynamoDBLocal
from devtools.template import create_tables

pytestmark = pytest.mark.dynamodb_local


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as engine:
        yield engine


@pytest.fixture
def ddb(dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch, push_env: dict[str, str]):
    """A DynamoDB client on DynamoDB Local with this test's tables created; the
    functions reach the same engine through AWS_ENDPOINT_URL_DYNAMODB."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local.endpoint)
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint)
    create_tables(
        client, {"CallRecordsTable": push_env["TABLE_NAME"], "QuarantineTable": push_env["QUARANTINE_TABLE_NAME"]}
    )
    return client


@pytest.fixture
def store(ddb, push_env: dict[str, str]) -> CallStore:
    return CallStore(ddb, push_env["TABLE_NAME"], push_env["QUARANTINE_TABLE_NAME"])


@pytest.fixture
def writer(ddb, push_env: dict[str, str]) -> RecordWriter:
    return RecordWriter(ddb, push_env["TABLE_NAME"])
