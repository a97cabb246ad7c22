"""The sql command: SQL over the lake's views, ``calls`` (one row per call) and
``call_changes`` (every change): on Athena in the stack's workgroup with --stack, on
DuckDB over the local stack's lake without."""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tools.nxcdr.arguments import Commands, Parents
from tools.nxcdr.athena import Rows
from tools.nxcdr.athena import run as run_on_athena
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.output import render_csv, render_table
from tools.nxcdr.target import Lake, Target


def register(commands: Commands, parents: Parents) -> None:
    sql = commands.add_parser(
        "sql",
        parents=[parents.common],
        help="SQL over calls (one row per call) and call_changes: Athena with --stack, DuckDB locally",
    )
    sql.add_argument("query", help='e.g. "SELECT kind, count(*) FROM calls GROUP BY kind"')
    sql.add_argument(
        "--csv",
        action="store_true",
        help='CSV instead of a table: NULL an empty field, every other value quoted (the empty text ""), lists as JSON',
    )
    sql.set_defaults(run=command_sql)


def lake_of(target: Target) -> Lake:
    if target.lake is None:
        raise OperatorError("this stack has no change events or lake: deploy this version first (make upgrade)")
    return target.lake


def _cell(value: Any) -> Any:
    """A value as JSON and CSV show it (DuckDB gives Python's types): a decimal as its
    exact text, always (a float would round 12345678901234567.89, and a column is of one
    type), NaN and infinities as null (JSON has neither)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_cell(inner) for inner in value]
    return value


def run_on_duckdb(lake: Lake, query: str) -> Rows:
    import duckdb  # noqa: PLC0415 - only this command needs it

    from devtools.lake_local import duckdb_connection  # noqa: PLC0415

    try:
        cursor = duckdb_connection(lake.local_lake).execute(query)
        columns = [column[0] for column in cursor.description or []]
        rows = [dict(zip(columns, (_cell(value) for value in row), strict=True)) for row in cursor.fetchall()]
    except duckdb.Error as error:
        raise OperatorError(" ".join(str(error).split())) from None
    return columns, rows


def query(target: Target, text: str) -> Rows:
    lake = lake_of(target)
    if lake.local_lake is not None:
        return run_on_duckdb(lake, text)
    if not lake.workgroup or not lake.database:
        raise OperatorError(f"stack {target.stack} has no lake (LakeEnabled=false): its events alone")
    return run_on_athena(lake.athena, text, workgroup=lake.workgroup, database=lake.database)


def command_sql(target: Target, arguments: argparse.Namespace) -> int:
    columns, rows = query(target, arguments.query)
    if arguments.json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n")
    elif arguments.csv:
        sys.stdout.write(render_csv(rows, columns))
    else:
        footer = f"\n{len(rows)} row" + ("" if len(rows) == 1 else "s")
        sys.stdout.write(render_table(rows, columns) + footer + "\n")
    return 0
