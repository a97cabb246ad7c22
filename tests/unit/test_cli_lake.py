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


@pytest.fixture
def stopped(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The lake a local stack left when it stopped: no state file (removed as it
    stopped), one Parquet file."""
    from devtools.lake_local import buffer_records, flush
    from tests.unit.test_lake_local import a_row

    monkeypatch.setenv("NXCDR_LOCAL_STATE", str(tmp_path / "stack.json"))
    paths = default_paths(tmp_path)
    buffer_records(paths, [json.dumps(a_row("c1", "e1", recording_key="")).encode()])
    assert flush(paths.lake).rows == 1
    return paths


def test_sql_events_and_flush_read_the_lake_after_the_local_stack_stopped(stopped, capsys):
    from devtools.lake_local import buffer_records
    from tests.unit.test_lake_local import a_row

    assert len(list(stopped.lake.glob("call_changes/*/*.parquet"))) == 1
    event = {
        "id": "ev-1",
        "detail-type": "Call Record Created",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    stopped.events.parent.mkdir(parents=True)
    stopped.events.write_text(json.dumps(event | {"detail": {"call": {"call_id": "c1"}}}) + "\n")

    code, out, _ = run(capsys, "--json", "sql", "SELECT call_id, duration_sec FROM calls")
    assert code == 0 and json.loads(out) == [{"call_id": "c1", "duration_sec": 61}]
    code, out, _ = run(capsys, "--json", "events", "--since", "1h")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["ev-1"]
    buffer_records(stopped, [json.dumps(a_row("c2", "e2")).encode()])
    code, out, _ = run(capsys, "lake", "flush")
    assert code == 0 and out.startswith("1 rows written in 1 files")
    assert len(list(stopped.lake.glob("call_changes/*/*.parquet"))) == 2


@pytest.mark.parametrize(
    "command",
    [["list"], ["show", "c1"], ["sync"], ["urls"], ["quarantine"], ["recording", "c1"], ["lake", "backfill"]],
)
def test_what_needs_the_running_stack_says_in_one_line_that_it_is_not_running(stopped, capsys, command):
    from tools.nxcdr.target import NOT_RUNNING

    with pytest.raises(SystemExit) as ended:
        cli.main(command)
    assert ended.value.code == NOT_RUNNING and "make local" in NOT_RUNNING and "\n" not in NOT_RUNNING
    assert capsys.readouterr().out == ""


def test_csv_tells_null_from_the_empty_text_and_shows_a_list_as_one_json_cell(stopped, capsys):
    code, out, _ = run(
        capsys,
        "sql",
        "--csv",
        "SELECT call_id, sources, recording_key, bind_id, ['a,b', '\"c\"'] AS listed, true AS flag FROM calls",
    )
    assert code == 0
    assert out.splitlines() == [
        '"call_id","sources","recording_key","bind_id","listed","flag"',
        '"c1","[""push""]","",,"[""a,b"", ""\\""c\\""""]","true"',  # NULL: nothing; "": ""
    ]
    [header, row] = csv.reader(io.StringIO(out), quoting=csv.QUOTE_NOTNULL)
    assert dict(zip(header, row, strict=True)) == {
        "call_id": "c1",
        "sources": '["push"]',
        "recording_key": "",
        "bind_id": None,
        "listed": '["a,b", "\\"c\\""]',
        "flag": "true",
    }
    assert json.loads(row[4]) == ["a,b", '"c"']
    code, out, _ = run(capsys, "sql", "--csv", "SELECT NULL AS nothing")  # a NULL alone: an empty line
    assert code == 0 and out == '"nothing"\n\n'
