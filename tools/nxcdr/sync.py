"""The sync command: run the CDR sync function now, or a backfill of a time range."""

from __future__ import annotations

import argparse
import json
import sys

from tools.nxcdr.arguments import Commands, Parents
from tools.nxcdr.output import emit, render_table
from tools.nxcdr.target import Target
from tools.nxcdr.times import time_argument, time_range

SYNC_COLUMNS = ("mode", "status", "windows", "pages", "new", "updated", "unchanged", "rejected", "lag_seconds")


def register(commands: Commands, parents: Parents) -> None:
    sync = commands.add_parser(
        "sync", parents=[parents.common], help="run the CDR sync now, or a backfill with --since/--to"
    )
    sync.add_argument(
        "--since", type=time_argument, help="backfill from (ISO-8601, or 2d / 36h ago); leaves the checkpoint alone"
    )
    sync.add_argument("--to", type=time_argument)
    sync.set_defaults(run=command_sync)


def command_sync(target: Target, arguments: argparse.Namespace) -> int:
    payload: dict[str, str] = {}
    if arguments.since:
        start, end = time_range(arguments)
        payload = {"from": start.isoformat(), "to": end.isoformat()}
    response = target.lambda_client.invoke(FunctionName=target.sync_function, Payload=json.dumps(payload).encode())
    result = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        sys.stderr.write(f"sync failed: {result.get('errorType')}: {result.get('errorMessage')}\n")
        return 2
    # A result without a mode (the sync not configured, or busy) is no run's report: shown as it came.
    emit(arguments, result, render_table([result], SYNC_COLUMNS) if "mode" in result else json.dumps(result))
    return 0
