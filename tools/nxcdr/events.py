"""The events command: the change events the stack put on its bus, since a time, and
with --follow each new one as it comes. Locally from the stand-in bus's sink; for a
deployed stack from the log group its bus's rule copies every event to (EventLogDays)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from tools.nxcdr.arguments import Commands, Parents
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.output import render_table
from tools.nxcdr.sql import lake_of
from tools.nxcdr.target import Lake, Target
from tools.nxcdr.times import parse_time, time_argument

EVENT_COLUMNS = ("time", "detail-type", "kind", "call_id", "record_version", "changed")
# How often --follow asks a deployed stack's log group again.
_POLL_SECONDS = 2.0
# A log event's time is the change event's, and its copy is written a moment later
# (longer when EventBridge retries the log target): each poll of --follow looks back
# this far before the newest event it printed, so that one written late is not passed.
_LATE_MS = 60_000


def register(commands: Commands, parents: Parents) -> None:
    events = commands.add_parser("events", parents=[parents.common], help="the change events the stack put on its bus")
    events.add_argument("--since", type=time_argument, default="1h", help="ISO-8601 or 1h/2d ago (default 1h)")
    events.add_argument("--follow", action="store_true", help="then each new event as it comes (Ctrl-C stops)")
    events.set_defaults(run=command_events)


def _deployed_events(
    lake: Lake, since: datetime, follow: bool, sleep: Callable[[float], None] = time.sleep
) -> Iterator[dict[str, Any]]:
    if not lake.events_log_group:
        raise OperatorError("the stack keeps no readable copy of its events (EventLogDays=0)")
    floor = int(since.timestamp() * 1000)
    newest = floor
    # Printed events by id, with their time: the look-back reads them again.
    seen: dict[str, int] = {}
    while True:
        start = max(floor, newest - _LATE_MS)
        arguments: dict[str, Any] = {"logGroupName": lake.events_log_group, "startTime": start}
        found = False
        while True:
            page = lake.logs.filter_log_events(**arguments)
            for entry in page.get("events", []):
                if entry["eventId"] in seen:
                    continue
                seen[entry["eventId"]] = int(entry["timestamp"])
                newest = max(newest, int(entry["timestamp"]))
                found = True
                yield json.loads(entry["message"])
            if not page.get("nextToken"):
                break
            arguments["nextToken"] = page["nextToken"]
        if not follow:
            return
        # What is older than the next look-back is never read again.
        seen = {event_id: moment for event_id, moment in seen.items() if moment >= newest - _LATE_MS}
        if not found:
            sleep(_POLL_SECONDS)


def read(target: Target, since: datetime, follow: bool) -> Iterator[dict[str, Any]]:
    lake = lake_of(target)
    if lake.local_events is None:
        yield from _deployed_events(lake, since, follow)
        return
    from devtools.lake_local import follow_events, read_events  # noqa: PLC0415

    if follow:
        yield from follow_events(lake.local_events, since)
    else:
        yield from read_events(lake.local_events, since)


def _row(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail") or {}
    call = detail.get("call") or {}
    return {
        "time": event.get("time"),
        "detail-type": event.get("detail-type"),
        "kind": call.get("kind"),
        "call_id": call.get("call_id"),
        "record_version": call.get("record_version"),
        "changed": ",".join(detail.get("changedFields") or []),
    }


def command_events(target: Target, arguments: argparse.Namespace) -> int:
    since = parse_time(arguments.since)
    if since > datetime.now(since.tzinfo) + timedelta(minutes=1):
        raise OperatorError(f"--since {arguments.since} is in the future")
    events = read(target, since, arguments.follow)
    try:
        if arguments.json:  # one event a line, as they come
            for event in events:
                sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
                sys.stdout.flush()
        elif arguments.follow:
            sys.stdout.write("  ".join(EVENT_COLUMNS) + "\n")
            for event in events:
                sys.stdout.write("  ".join(str(value if value is not None else "") for value in _row(event).values()))
                sys.stdout.write("\n")
                sys.stdout.flush()
        else:
            rows = [_row(event) for event in events]
            sys.stdout.write(render_table(rows, EVENT_COLUMNS) + f"\n{len(rows)} events\n")
    except KeyboardInterrupt:
        return 0
    return 0
