"""DynamoDB Local (the real engine) for every test in this folder, with tables built
from template.yaml so that the tests cannot drift from the deployed schema."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from nxcloud_cdr.config import SyncSettings
from nxcloud_cdr.nxcloud_api import NxcloudClient
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.sync import CdrSync
from nxcloud_cdr.sync_state import SyncState
from nxcloud_cdr.write_rule import RecordWriter

from devtools.dynamodb_local import DynamoDBLocal
from devtools.fake_nxcloud import FakeNxcloud, generate_records
from devtools.streams import StreamPump
from devtools.template import create_tables, stream_sources

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


# -- the sync against the stand-in NXCLOUD ----------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
# Records over the 6 hours before the sync's delay, so the first run (6 h look-back) covers them.
SPAN_MS = 6 * 3600 * 1000
FIRST_MS = (NOW_S - 120 - 6 * 3600) * 1000


@pytest.fixture
def fake() -> Iterator[FakeNxcloud]:
    with FakeNxcloud([], hang_seconds=1.0, clock_ms=lambda: int(NOW.timestamp() * 1000)) as server:
        yield server


@pytest.fixture
def settings(push_env: dict[str, str]) -> SyncSettings:
    return SyncSettings.from_env(
        {
            **push_env,
            "SYNC_INITIAL_LOOKBACK_SECONDS": str(6 * 3600 + 120),
            "SYNC_WINDOW_MAX_SECONDS": "3600",
            "SYNC_OVERLAP_SECONDS": "600",
            "SYNC_DELAY_SECONDS": "120",
            # NOW is in 2024 and DynamoDB Local runs TTL: keep quarantine items from expiring.
            "QUARANTINE_RETENTION_DAYS": "36500",
        }
    )


@pytest.fixture
def make_sync(ddb, fake: FakeNxcloud, settings: SyncSettings) -> Callable[..., CdrSync]:
    def build(remaining_ms: Callable[[], int] = lambda: 600_000, writer_: RecordWriter | None = None) -> CdrSync:
        api = NxcloudClient(
            fake.base_url,
            fake.access_key,
            fake.access_secret,
            read_timeout=0.3,
            sleep=lambda _: None,
            clock_ms=lambda: int(NOW.timestamp() * 1000),
        )
        state = SyncState(ddb, settings.table_name, "cc_cdr")
        writer = writer_ or RecordWriter(ddb, settings.table_name)
        # The settings' quarantine retention: NOW is in 2024 and DynamoDB Local runs TTL.
        quarantine = CallStore.from_settings(ddb, settings)
        return CdrSync(api, quarantine, writer, state, settings, now=lambda: NOW, remaining_ms=remaining_ms)

    return build


_TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """(operation, table, index or "") of every DynamoDB call made while the test runs."""
    made: list[tuple[str, str, str]] = []
    real = BaseClient._make_api_call  # type: ignore[attr-defined]  # botocore's stubs leave it out

    def record(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb" and operation == "TransactWriteItems":
            # IAM allows each action of a transaction as its own operation (PutItem, ...).
            for action in params["TransactItems"]:
                [(name, request)] = action.items()
                made.append((_TRANSACTION_ACTIONS[name], request["TableName"], ""))
        elif self.meta.service_model.service_name == "dynamodb":
            tables = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {}))
            made.extend((operation, table, str(params.get("IndexName", ""))) for table in tables)
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    return made


@pytest.fixture
def live_nxcloud(ddb, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNxcloud]:
    """The stand-in NXCLOUD serving 40 records of the last hours, and the sync
    function's environment pointing at it (the real clock: the function's own)."""
    now_ms = int(time.time() * 1000)
    with FakeNxcloud(generate_records(40, now_ms - 3 * 3600 * 1000, 2 * 3600 * 1000)) as fake:
        monkeypatch.setenv("NXCLOUD_API_BASE_URL", fake.base_url)
        monkeypatch.setenv("NXCLOUD_ACCESS_KEY", fake.access_key)
        monkeypatch.setenv("NXCLOUD_ACCESS_SECRET", fake.access_secret)
        monkeypatch.setenv("NXCLOUD_BACKOFF_SECONDS", "0")
        yield fake


def stream_pump(function: str, dynamodb_local: DynamoDBLocal, table: str, invoke: Any) -> StreamPump:
    """The function's stream event source of template.yaml, on DynamoDB Local's stream
    of ``table``, handing batches to the function's handler."""
    [source] = [source for source in stream_sources() if source.function == function]
    return StreamPump(
        dynamodb_local.endpoint, table, source, lambda event, _context: invoke(function, event), lambda: None
    )
