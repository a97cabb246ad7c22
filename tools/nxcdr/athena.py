"""SQL on Athena, in the stack's workgroup (its results location, encryption and
bytes-scanned limit are the workgroup's, which the stack enforces)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tools.nxcdr.errors import OperatorError

Rows = tuple[list[str], list[dict[str, Any]]]
_DONE = {"SUCCEEDED", "FAILED", "CANCELLED"}
_INTEGERS = {"tinyint", "smallint", "integer", "bigint"}
_FLOATS = {"real", "double", "float"}


def _value(cell: dict[str, str], kind: str) -> Any:
    """A cell as JSON shows it: Athena returns every value as text (a missing
    ``VarCharValue`` is NULL)."""
    if "VarCharValue" not in cell:
        return None
    text = cell["VarCharValue"]
    if kind in _INTEGERS:
        return int(text)
    if kind in _FLOATS:
        number = float(text)
        return number if math.isfinite(number) else None  # JSON has no NaN, as locally
    if kind == "boolean":
        return text == "true"
    if kind.startswith("decimal"):
        return text  # exact, as locally: a float would round it
    if kind.startswith("timestamp"):
        return _iso_time(text)
    # Arrays, maps and rows come as Athena's own text ("[push, sync]", not JSON):
    # CAST(... AS JSON) in the query gives JSON (docs/lake.md).
    return text


def _iso_time(text: str) -> str:
    """Athena's ``2024-05-01 12:00:00.250`` (and ``... UTC``, ``... Asia/Shanghai``,
    ``... +08:00`` with a zone) as ISO-8601, as the local run gives it."""
    day, _, rest = text.partition(" ")
    clock, _, zone = rest.partition(" ")
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}")
        if zone:
            moment = (
                datetime.fromisoformat(f"{day}T{clock}{zone}")
                if zone[:1] in "+-"
                else moment.replace(tzinfo=ZoneInfo(zone))
            )
    except (ValueError, ZoneInfoNotFoundError):
        return text
    return moment.isoformat()


def _pages(client: Any, execution_id: str) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        arguments: dict[str, Any] = {"QueryExecutionId": execution_id, "MaxResults": 1000}
        if token:
            arguments["NextToken"] = token
        page: dict[str, Any] = client.get_query_results(**arguments)
        yield page
        token = page.get("NextToken")
        if not token:
            return


def run(
    client: Any,
    sql: str,
    *,
    workgroup: str,
    database: str,
    timeout_seconds: float = 600,
    sleep: Callable[[float], None] = time.sleep,
) -> Rows:
    """The columns and rows of one query; an :class:`OperatorError` with Athena's own
    reason when it fails (a syntax error, the workgroup's scan limit)."""
    started = client.start_query_execution(
        QueryString=sql,
        WorkGroup=workgroup,
        QueryExecutionContext={"Database": database, "Catalog": "AwsDataCatalog"},
    )
    execution_id = started["QueryExecutionId"]
    waited, pause = 0.0, 0.2
    try:
        while True:
            execution = client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
            status = execution["Status"]
            if status["State"] in _DONE:
                break
            if waited >= timeout_seconds:
                raise OperatorError(f"the query ran {timeout_seconds:.0f} s and was stopped ({execution_id})")
            sleep(pause)
            waited += pause
            pause = min(pause * 2, 2.0)
    except BaseException:
        # Ctrl-C or the timeout: a query left running is still billed for what it scans.
        client.stop_query_execution(QueryExecutionId=execution_id)
        raise
    if status["State"] != "SUCCEEDED":
        reason = " ".join(str(status.get("StateChangeReason") or status["State"]).split())
        raise OperatorError(f"the query {status['State'].lower()}: {reason}")
    columns: list[str] = []
    kinds: list[str] = []
    rows: list[dict[str, Any]] = []
    for number, page in enumerate(_pages(client, execution_id)):
        result = page["ResultSet"]
        if number == 0:
            info = result["ResultSetMetadata"]["ColumnInfo"]
            columns = [column["Name"] for column in info]
            kinds = [str(column.get("Type", "varchar")).lower() for column in info]
        data = result.get("Rows", [])
        # A SELECT's first row is its header (Athena repeats the column names as data).
        if number == 0 and data and [cell.get("VarCharValue") for cell in data[0]["Data"]] == columns:
            data = data[1:]
        for row in data:
            cells = row["Data"]
            rows.append({column: _value(cells[i], kinds[i]) for i, column in enumerate(columns)})
    return columns, rows
