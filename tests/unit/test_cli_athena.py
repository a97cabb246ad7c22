"""`nxcdr sql --stack`: a query on Athena in the stack's workgroup (moto's Athena, which
answers the results it is given), its rows typed, its failures one line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends

from tools.nxcdr import athena
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.sql import run_on_duckdb
from tools.nxcdr.target import Lake

COLUMNS = [{"Name": "kind", "Type": "varchar"}, {"Name": "calls", "Type": "bigint"}, {"Name": "rate", "Type": "double"}]


def _row(*values: str | None) -> dict[str, Any]:
    return {"Data": [{"VarCharValue": value} if value is not None else {} for value in values]}


@pytest.fixture
def client() -> Any:
    with mock_aws():
        made = boto3.client("athena", region_name="us-east-1")
        made.create_work_group(Name="calls", Configuration={"ResultConfiguration": {"OutputLocation": "s3://r/"}})
        yield made


def test_rows_are_typed_and_the_header_row_is_not_data(client):
    backend = athena_backends["123456789012"]["us-east-1"]
    rows = [_row("kind", "calls", "rate"), _row("cc_cdr", "12", "0.5"), _row("pns_call_result", None, None)]
    backend.query_results_queue.append(QueryResults(rows=rows, column_info=COLUMNS))

    columns, result = athena.run(client, "SELECT ...", workgroup="calls", database="db", sleep=lambda _: None)

    assert columns == ["kind", "calls", "rate"]
    assert result == [
        {"kind": "cc_cdr", "calls": 12, "rate": 0.5},
        {"kind": "pns_call_result", "calls": None, "rate": None},
    ]
    [execution_id] = client.list_query_executions(WorkGroup="calls")["QueryExecutionIds"]
    execution = client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["WorkGroup"] == "calls"
    assert execution["QueryExecutionContext"]["Database"] == "db"


def test_decimals_and_times_read_as_the_local_run_gives_them(client, tmp_path):
    backend = athena_backends["123456789012"]["us-east-1"]
    columns = [
        {"Name": "amount", "Type": "decimal(20,2)"},
        {"Name": "whole", "Type": "decimal(10,0)"},
        {"Name": "at", "Type": "timestamp(3)"},
    ]
    rows = [_row("amount", "whole", "at"), _row("12345678901234567.89", "42", "2024-05-01 12:00:00.250")]
    backend.query_results_queue.append(QueryResults(rows=rows, column_info=columns))

    _, deployed = athena.run(client, "SELECT ...", workgroup="calls", database="db", sleep=lambda _: None)
    local_lake = Lake(None, "", None, "", "full", "", lambda _: "", local_lake=tmp_path)
    _, local = run_on_duckdb(
        local_lake,
        "SELECT 12345678901234567.89::DECIMAL(20,2) AS amount, 42::DECIMAL(10,0) AS whole,"
        " TIMESTAMP '2024-05-01 12:00:00.250' AS at",
    )

    for engine in (deployed, local):
        [row] = engine
        # Exact, not 1.2345678901234568e+16, and of one type in a column.
        assert (row["amount"], row["whole"]) == ("12345678901234567.89", "42")
        assert datetime.fromisoformat(row["at"]) == datetime(2024, 5, 1, 12, 0, 0, 250_000)


class _Stuck:
    """An Athena whose query never finishes, or fails with a reason."""

    def __init__(self, final: dict[str, str] | None = None) -> None:
        self.final = final
        self.stopped: list[str] = []

    def start_query_execution(self, **_: Any) -> dict[str, str]:
        return {"QueryExecutionId": "q1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        return {"QueryExecution": {"Status": self.final or {"State": "RUNNING"}}}

    def stop_query_execution(self, QueryExecutionId: str) -> None:
        self.stopped.append(QueryExecutionId)


def test_a_query_that_runs_too_long_is_stopped_and_said_in_one_line():
    stuck = _Stuck()
    with pytest.raises(OperatorError, match="ran 5 s and was stopped"):
        athena.run(stuck, "SELECT 1", workgroup="w", database="d", timeout_seconds=5, sleep=lambda _: None)
    assert stuck.stopped == ["q1"]


def test_a_failed_query_says_athenas_reason():
    failed = _Stuck({"State": "FAILED", "StateChangeReason": "Query exhausted\nthe bytes scanned limit"})
    with pytest.raises(OperatorError, match="the query failed: Query exhausted the bytes scanned limit"):
        athena.run(failed, "SELECT 1", workgroup="w", database="d", sleep=lambda _: None)
    assert failed.stopped == []


def test_a_local_nan_or_infinity_is_null_so_that_json_stays_json(tmp_path):
    local_lake = Lake(None, "", None, "", "full", "", lambda _: "", local_lake=tmp_path)
    _, rows = run_on_duckdb(local_lake, "SELECT 'NaN'::DOUBLE AS a, 'inf'::DOUBLE AS b, 1.5::DOUBLE AS c")
    assert rows == [{"a": None, "b": None, "c": 1.5}]


def test_athenas_nan_and_zoned_times_read_as_the_local_run_gives_them(client):
    backend = athena_backends["123456789012"]["us-east-1"]
    columns = [{"Name": "rate", "Type": "double"}, {"Name": "at", "Type": "timestamp(3) with time zone"}]
    rows = [
        _row("rate", "at"),
        _row("NaN", "2024-05-01 12:00:00.250 UTC"),
        _row("Infinity", "2024-05-01 20:00:00.000 Asia/Shanghai"),
        _row("0.5", "2024-05-01 20:00:00.000 +08:00"),
    ]
    backend.query_results_queue.append(QueryResults(rows=rows, column_info=columns))

    _, result = athena.run(client, "SELECT ...", workgroup="calls", database="db", sleep=lambda _: None)

    assert [row["rate"] for row in result] == [None, None, 0.5]
    moments = [datetime.fromisoformat(row["at"]) for row in result]
    assert all(moment.utcoffset() is not None for moment in moments)
    assert {moment.astimezone(UTC) for moment in moments[1:]} == {datetime(2024, 5, 1, 12, tzinfo=UTC)}
    assert moments[0] == datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
