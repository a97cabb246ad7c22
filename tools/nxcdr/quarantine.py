"""Commands on the quarantine: list the bodies kept instead of stored, replay one to its
push URL once a fix is deployed."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from nxcloud_cdr.kinds import PUSH_KINDS
from nxcloud_cdr.times import from_epoch, iso_utc, now_utc

from tools.nxcdr.arguments import Commands, Parents
from tools.nxcdr.output import emit, emit_page, plain
from tools.nxcdr.paging import non_empty, read_page
from tools.nxcdr.prompt import confirm
from tools.nxcdr.target import Target, push_urls
from tools.nxcdr.times import iso, parse_time

QUARANTINE_COLUMNS = ("pk", "reason", "attempts", "lastSeenAt", "bodySize", "replayStatus", "message")
# Quarantine reasons a deployed fix can change (a field the models could not read, a
# mapping bug, a write that failed, a limit raised). The others are the body itself
# (not JSON, not UTF-8, no id...): replaying it gives the same answer; --force anyway.
REPLAYABLE_REASONS = ("invalid_fields", "unprocessable", "unstorable", "too_large")


def register(commands: Commands, parents: Parents) -> None:
    quarantine = commands.add_parser(
        "quarantine", parents=[parents.common, parents.paged], help="bodies kept instead of stored"
    )
    quarantine.set_defaults(run=command_quarantine)

    replay = commands.add_parser(
        "replay",
        parents=[parents.common],
        help="send a quarantined body to its push URL again (after a fix is deployed)",
        description="Exit status: 0 answered 200, 2 answered otherwise, 1 not replayed.",
    )
    replay.add_argument("id", type=non_empty, help="the quarantine id (pk) that `quarantine` lists")
    replay.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    replay.add_argument(
        "--force",
        action="store_true",
        help="replay also a body already replayed, or one whose reason a fix cannot change",
    )
    replay.set_defaults(run=command_replay)


def command_quarantine(target: Target, arguments: argparse.Namespace) -> int:
    page = read_page(arguments, lambda: target.store.list_quarantine(limit=arguments.limit, cursor=arguments.cursor))
    emit_page(arguments, page, QUARANTINE_COLUMNS)
    return 0


def _sync_window(item: dict[str, Any]) -> tuple[datetime, datetime]:
    """The call-time window that re-reads a quarantined sync record: the one the sync
    read it in when the item says, else an hour around the record's start time, else
    the day before it was quarantined."""
    start, end = (
        from_epoch(plain(item.get("windowFrom")), unit="s"),
        from_epoch(plain(item.get("windowTo")), unit="s"),
    )
    if start and end:
        return start, end
    try:
        began = from_epoch(json.loads(item["body"]).get("startTime"))
    except (ValueError, TypeError, AttributeError):
        began = None
    if began:
        return began - timedelta(hours=1), began + timedelta(hours=1)
    seen = parse_time(str(item.get("firstSeenAt") or iso_utc(now_utc())))
    return seen - timedelta(days=1), seen


def command_replay(target: Target, arguments: argparse.Namespace) -> int:
    """Send a quarantined body again, byte for byte, to its push URL: after a fix is
    deployed it takes the path NXCLOUD's push takes."""
    item = target.store.quarantined(arguments.id)
    if item is None:
        sys.stderr.write(f"no quarantined body {arguments.id}\n")
        return 1
    reason = str(item.get("reason", ""))
    if item.get("source") == "sync":  # a row of the sync, not a push
        start, end = _sync_window(item)
        stack = f" --stack {target.stack}" if target.stack else ""
        sys.stderr.write(
            "this row came from the sync, not from a push: after the fix, read its window again with\n"
            f"  ./nxcdr{stack} sync --since {iso(start)} --to {iso(end)}\n"
        )
        return 1
    kind = PUSH_KINDS.get(str(item.get("kind")))
    if kind is None:
        sys.stderr.write(f"{item.get('kind')} records are not pushed; run a sync or a backfill instead\n")
        return 1
    if item.get("bodyTruncated"):
        sys.stderr.write(f"{arguments.id} was kept truncated (too large even compressed): it cannot be replayed\n")
        return 1
    # A replay the store did not answer (5xx, no answer) did not happen: try again freely.
    if item.get("replayedAt") and int(item.get("replayStatus") or 0) < 500 and not arguments.force:
        sys.stderr.write(
            f"{arguments.id} was already replayed at {item['replayedAt']} (answer {item.get('replayStatus')}); "
            "--force replays it again\n"
        )
        return 1
    if reason not in REPLAYABLE_REASONS and not arguments.force:
        sys.stderr.write(
            f"{arguments.id} was quarantined as {reason}: the body itself is at fault, and a replay would get the same "
            f"answer (replayable: {', '.join(REPLAYABLE_REASONS)}); --force replays it anyway\n"
        )
        return 1
    shown = push_urls(target, "<token>")[kind.name]
    if not arguments.yes and not confirm(f"replay {arguments.id} ({reason}) to {shown}?"):
        sys.stderr.write("not replayed\n")
        return 1
    token = target.push_token()
    url = push_urls(target, token)[kind.name]
    headers = {"Content-Type": "application/json"}
    if kind.token_header:  # as NXCLOUD sends it (the call-log callback)
        headers[kind.token_header] = token
    request = urllib.request.Request(url, data=item["body"], method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, answer = response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, TimeoutError) as error:
        reason_text = getattr(error, "reason", error)
        sys.stderr.write(f"not replayed: the push API at {target.api_url} did not answer ({reason_text})\n")
        return 1
    target.store.mark_replayed(arguments.id, status=status, at=now_utc())
    emit(
        arguments,
        {"status": status, "answer": json.loads(answer) if answer.startswith("{") else answer},
        f"{status} {answer}",
    )
    return 0 if status == 200 else 2
