"""`nxcdr lake backfill`, `lake flush`, `sql` and `events` against the local stack's
lake: stored calls (moto's table) published through the real stand-ins of the bus and
the delivery stream on loopback, written as Parquet, queried on DuckDB."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from nxcloud_cdr.kinds import RECORD_KINDS
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.times import DEFAULT_ZONE
from nxcloud_cdr.write_rule import RecordWriter

from devtools.lake_local import LocalLake, default_paths
from tests.conftest import load_event
from tools.nxcdr import cli
from tools.nxcdr.target import Lake, Target

SAMPLES = {
    "pns_call_result": "pns-call-result.json",
    "cc_report": "cc-report.json",
    "cc_cdr": "cc-call-log.json",
}


def store_samples(client: Any, table: str) -> int:
    writer = RecordWriter(client, table)
    for kind, sample in SAMPLES.items():
        body = load_event(sample)["body"]
        writer.write(RECORD_KINDS[kind].map(json.loads(body), body, DEFAULT_ZONE), datetime.now(UTC), source="push")
    return len(SAMPLES)


@pytest.fixture
def local(tmp_path: Any, aws: Any, push_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    paths = default_paths(tmp_path)
    stand_in = LocalLake(paths, 0, bus_names=["calls"], stream_names=["call-changes"]).start()
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    target = Target(
        store=CallStore(aws, push_env["TABLE_NAME"], push_env["QUARANTINE_TABLE_NAME"]),
        lambda_client=None,
        sync_function="",
        api_url="",
        push_token=lambda: "",
        lake=Lake(
            events=session.client("events", endpoint_url=stand_in.endpoint),
            bus_name="calls",
            firehose=session.client("firehose", endpoint_url=stand_in.endpoint),
            stream_name="call-changes",
            number_mode="full",
            salt_secret_id="",
            read_secret=lambda _: "",
            local_lake=paths.lake,
            local_events=paths.events,
        ),
    )
    monkeypatch.setattr(cli, "local_target", lambda: target)
    yield target
    stand_in.stop()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_backfill_then_flush_then_sql_shows_each_call_once_however_often_it_runs(local, aws, push_env, capsys):
    stored = store_samples(aws, push_env["TABLE_NAME"])
    assert run(capsys, "sql", "SELECT count(*) AS n FROM calls")[1].splitlines()[2].strip() == "0"

    for _ in range(2):  # a backfill run twice adds rows to call_changes, none to calls
        code, out, _ = run(capsys, "--json", "lake", "backfill")
        assert code == 0 and json.loads(out)["published"] == stored
    code, out, _ = run(capsys, "lake", "flush")
    assert code == 0 and out.startswith(f"{2 * stored} rows written")

    code, out, _ = run(capsys, "--json", "sql", "SELECT kind, call_id, outcome FROM calls ORDER BY kind")
    rows = json.loads(out)
    assert code == 0 and [row["kind"] for row in rows] == sorted(SAMPLES)
    code, out, _ = run(
        capsys, "sql", "--csv", "SELECT count(*) AS changes, count(DISTINCT idempotency_key) AS keys FROM call_changes"
    )
    assert list(csv.reader(io.StringIO(out))) == [["changes", "keys"], [str(2 * stored), str(stored)]]

    # The bus got the same changes: `events` lists them, replayed.
    code, out, _ = run(capsys, "--json", "events", "--since", "1h")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(events) == 2 * stored
    assert {event["detail"]["metadata"]["replayed"] for event in events} == {True}
    code, out, _ = run(capsys, "events", "--since", "1h")
    assert out.rstrip().endswith(f"{2 * stored} events") and "Call Record Created" in out


def test_a_query_duckdb_refuses_is_one_line(local, capsys):
    code, out, err = run(capsys, "sql", "SELECT nothing FROM nowhere")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("nxcdr: ") and "nowhere" in err
