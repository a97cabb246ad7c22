"""The lake commands: ``lake flush`` writes what the local stand-in of the delivery
stream buffers as Parquet now (a deployed stream writes within its buffer interval);
``lake backfill`` publishes every stored call again, to the bus and the lake, marked
``replayed`` and with the idempotency key of the change it shows: a re-run adds rows to
``call_changes`` and none to ``calls``."""

from __future__ import annotations

import argparse
import sys

from nxcloud_cdr.publisher import ChangePublisher, number_policy
from nxcloud_cdr.times import parse_zone

from tools.nxcdr.arguments import Commands, Parents
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.output import emit, render_table
from tools.nxcdr.sql import lake_of
from tools.nxcdr.target import Target

BACKFILL_COLUMNS = ("pages", "published", "failed", "lake_records", "lake_bytes")
# Items a page of the scan: a publisher batch of events is 10 a call, of rows 500.
_PAGE = 500


def register(commands: Commands, parents: Parents) -> None:
    lake = commands.add_parser("lake", parents=[parents.common], help="the lake: flush (local), backfill")
    actions = lake.add_subparsers(dest="action", required=True)
    flush = actions.add_parser("flush", parents=[parents.common], help="write what is buffered as Parquet now (local)")
    flush.set_defaults(run=command_flush)
    backfill = actions.add_parser(
        "backfill", parents=[parents.common], help="publish every stored call again (idempotent)"
    )
    backfill.add_argument("--lake-only", action="store_true", help="to the lake alone, not the bus's subscribers")
    backfill.set_defaults(run=command_backfill)


def command_flush(target: Target, arguments: argparse.Namespace) -> int:
    lake = lake_of(target)
    if lake.local_lake is None:
        raise OperatorError("lake flush is for the local stack: a deployed stream writes within its buffer interval")
    from devtools.lake_local import flush  # noqa: PLC0415

    report = flush(lake.local_lake)
    emit(
        arguments,
        {"rows": report.rows, "files": [str(path) for path in report.files], "errors": report.errors},
        f"{report.rows} rows written in {len(report.files)} files"
        + (f"; {report.errors} errors" if report.errors else ""),
    )
    return 0


def command_backfill(target: Target, arguments: argparse.Namespace) -> int:
    lake = lake_of(target)
    if arguments.lake_only and not lake.stream_name:
        raise OperatorError("--lake-only: the stack has no lake (LakeEnabled=false)")
    publisher = ChangePublisher(
        lake.events,
        lake.bus_name,
        parse_zone(target.timezone),
        number_policy(lake.number_mode, lake.salt_secret_id, lake.read_secret),
        firehose=lake.firehose,
        stream_name=lake.stream_name,
    )
    totals = dict.fromkeys(BACKFILL_COLUMNS, 0)
    failed: list[str] = []
    cursor: str | None = None
    while True:
        page = target.store.calls(limit=_PAGE, cursor=cursor)
        outcome = publisher.publish_items(page.items, to_bus=not arguments.lake_only)
        totals["pages"] += 1
        totals["published"] += outcome.published
        totals["failed"] += len(outcome.failed)
        totals["lake_records"] += outcome.lake_records
        totals["lake_bytes"] += outcome.lake_bytes
        failed.extend(outcome.failed)
        sys.stderr.write(f"\rpage {totals['pages']}: {totals['published']} published")
        cursor = page.cursor
        if not cursor:
            break
    sys.stderr.write("\n")
    emit(arguments, {**totals, "failedKeys": failed}, render_table([totals], BACKFILL_COLUMNS))
    # Failed items are named; running it again publishes them (and the rest, harmlessly).
    return 1 if failed else 0
