"""What commands print on stdout: a table, or with --json the same data as JSON (and
for sql, with --csv, as CSV)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from nxcloud_cdr.lookups import Page


def plain(value: Any) -> Any:
    """``value`` with DynamoDB's Decimals, bytes and sets made what JSON and a table show."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {key: plain(inner) for key, inner in value.items()}
    if isinstance(value, list | set | tuple):
        return [plain(inner) for inner in value]
    return value


def _table_text(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):  # as --json and --csv show them, not Python's repr
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_table_text(row.get(column)) for column in columns] for row in rows]
    # Only free text is cut; ids must stay whole to be copied into the next command.
    cells = [
        [
            cell[:57] + "..." if column == "message" and len(cell) > 60 else cell
            for column, cell in zip(columns, line, strict=True)
        ]
        for line in cells
    ]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(widths[i]) for i, column in enumerate(columns))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) for line in cells]
    return "\n".join(lines)


def _csv_text(value: Any) -> str | None:
    value = plain(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | list | dict):  # one cell each, as JSON writes them
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def render_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """The rows as CSV, a header first: NULL an empty field, unquoted, and every other
    value quoted (the empty text is ``""``), so that readers tell them apart as they do
    in PostgreSQL's CSV (Python's: ``csv.reader(..., quoting=csv.QUOTE_NOTNULL)``);
    lists, maps and booleans as JSON writes them."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_NOTNULL)
    writer.writerow(columns)
    for row in rows:
        cells = [_csv_text(row.get(column)) for column in columns]
        if cells == [None]:  # the csv module refuses it; PostgreSQL writes an empty line
            text.write("\n")
        else:
            writer.writerow(cells)
    return text.getvalue()


def emit(arguments: argparse.Namespace, payload: Any, table: str) -> None:
    if arguments.json:
        sys.stdout.write(json.dumps(plain(payload), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(table + "\n")


def emit_page(arguments: argparse.Namespace, page: Page, columns: Sequence[str]) -> None:
    footer = f"\n{len(page.items)} shown" + (f"; more with --cursor {page.cursor}" if page.cursor else "")
    emit(arguments, {"items": page.items, "cursor": page.cursor}, render_table(page.items, columns) + footer)
