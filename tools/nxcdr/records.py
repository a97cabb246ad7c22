"""Commands that read records: show (one call by id), list (by call start time),
number (by phone number), binding (by binding id)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nxcloud_cdr.kinds import normalised
from nxcloud_cdr.phones import normalise_number
from nxcloud_cdr.times import parse_zone

from tools.nxcdr.arguments import RECORD_KINDS, Commands, Parents, kind_option
from tools.nxcdr.output import emit, emit_page, plain, render_table
from tools.nxcdr.paging import non_empty, read_page
from tools.nxcdr.target import Target
from tools.nxcdr.times import time_argument, time_range

RECORD_COLUMNS = (
    "callStartUtc",
    "kind",
    "nxcloudId",
    "callerNumber",
    "calleeNumber",
    "didNumber",
    "durationSec",
    "statusName",
)
LIST_DEFAULT_KIND = "pns_call_result"


def register(commands: Commands, parents: Parents) -> None:
    show = commands.add_parser(
        "show", parents=[parents.common], help="one record by its NXCLOUD id (every kind that has it)"
    )
    show.add_argument("id", type=non_empty)
    kind_option(show)
    show.set_defaults(run=command_show)

    listing = commands.add_parser(
        "list", parents=[parents.common, parents.paged], help="records of one kind by call start time, oldest first"
    )
    kind_option(listing, default_kind=LIST_DEFAULT_KIND)
    listing.add_argument(
        "--since",
        type=time_argument,
        help="ISO-8601 (UTC unless a zone is given) or 2d/36h ago; default: 7 days before --to",
    )
    listing.add_argument("--to", type=time_argument, help="ISO-8601; default: now")
    listing.set_defaults(run=command_list)

    number = commands.add_parser(
        "number", parents=[parents.common, parents.paged], help="records involving a phone number, newest first"
    )
    number.add_argument("number", type=non_empty)
    number.set_defaults(run=command_number)

    binding = commands.add_parser(
        "binding", parents=[parents.common, parents.paged], help="calls of one binding, newest first"
    )
    which = binding.add_mutually_exclusive_group(required=True)
    which.add_argument("--bind-id", type=non_empty)
    which.add_argument("--customer-bind-id", type=non_empty)
    binding.set_defaults(run=command_binding)


def command_show(target: Target, arguments: argparse.Namespace) -> int:
    items = target.store.get(arguments.id, arguments.kind)
    if not items:
        sys.stderr.write(f"no record with id {arguments.id}\n")
        return 1
    zone = parse_zone(target.timezone)
    for item in items:
        item["versions"] = target.store.versions(arguments.id, str(item["kind"]))
        item["fields"], item["unknownFields"] = normalised(item, zone)
    if arguments.json:
        emit(arguments, items, "")
        return 0
    for item in items:
        summary = render_table([item], RECORD_COLUMNS)
        fields = json.dumps(plain(item.get("fields", {})), indent=2, ensure_ascii=False, sort_keys=True)
        sources = ", ".join(item.get("sources") or [item.get("source", "")])
        first = item.get("receivedAt", "")
        seen = f"first received {first}, last {item.get('lastSeenAt') or first}"
        # An item that shows the join of its copies (docs/data-model.md) has their call summary.
        joined = "callSummary" in item
        what = f"the join of {len(item['versions'])} copies, value by value" if joined else "as received"
        recordings = "\n".join(recording_lines(item))
        sys.stdout.write(
            f"{summary}\n\nsources: {sources} ({seen})\n\n{recordings}\n\n"
            f"fields:\n{fields}\n\nraw ({what}):\n{item.get('raw', '')}\n\n"
        )
        for problem in item.get("problems", []):
            sys.stdout.write(f"not normalised: {problem}\n")
        for version in item["versions"]:
            sys.stdout.write(
                f"copy received {version.get('receivedAt', '')} from {version.get('source', '')}:\n"
                f"{version.get('raw', '')}\n\n"
            )
    return 0


def recording_lines(item: dict[str, Any]) -> list[str]:
    """What `show` says of a record's recordings: the item's state, and each
    recording's (pending, archived, retrying, failed) with the reason it failed."""
    from nxcloud_cdr.recording_links import link_id  # noqa: PLC0415
    from nxcloud_cdr.recordings.archiver import links_of  # noqa: PLC0415

    links = dict(links_of(item))
    entries = {name: entry for name, entry in (item.get("recordings") or {}).items() if isinstance(entry, dict)}
    state = item.get("recordingState")
    if not links and not entries and not state:
        return ["recordings: none (the record links to no recording)"]
    if state == "failed":
        state = "failed, " + (
            "retrying (the archiver's hourly schedule tries again; `nxcdr recordings retry` now)"
            if item.get("recordingFailed") == "retrying"
            else "given up (`nxcdr recordings retry` tries again)"
        )
    elif state == "pending":
        state = "pending (the archiver has them to do)"
    elif not state:
        state = "not marked (stored before the archiver: `nxcdr recordings backfill`)"
    lines = [f"recordings: {state}"]
    for name in [*links, *sorted(set(entries) - set(links))]:
        entry = entries.get(name)
        if entry is None or (name in links and entry.get("link") != link_id(links[name])):
            lines.append(f"  {name}: pending (not tried yet)")
        elif entry.get("status") == "archived":
            lines.append(
                f"  {name}: archived ({plain(entry.get('bytes'))} bytes, {entry.get('archivedAt', '?')}):"
                f" `nxcdr recording {item.get('nxcloudId', '')}`"
            )
        else:
            word = "retrying" if entry.get("retryable") else "failed"
            attempts = plain(entry.get("attempts", 0))
            when = f"first {entry.get('firstFailedAt', '?')}, last {entry.get('failedAt', '?')}"
            error = " ".join(str(entry.get("error", "")).split())
            lines.append(f"  {name}: {word}: {entry.get('reason', '?')} after {attempts} attempts ({when}): {error}")
    return lines


def command_list(target: Target, arguments: argparse.Namespace) -> int:
    start, end = time_range(arguments)
    kind = arguments.kind or LIST_DEFAULT_KIND
    page = read_page(
        arguments, lambda: target.store.by_time(kind, start, end, limit=arguments.limit, cursor=arguments.cursor)
    )
    emit_page(arguments, page, RECORD_COLUMNS)
    if not arguments.kind and not arguments.json:
        # Said every time: the sync's records are another kind, and an empty list of
        # the default kind must not read as "nothing stored".
        others = ", ".join(name for name in RECORD_KINDS if name != kind)
        sys.stdout.write(f"(kind {kind}, the default; --kind for {others})\n")
    return 0


def command_number(target: Target, arguments: argparse.Namespace) -> int:
    number = normalise_number(arguments.number) or arguments.number
    emit_page(
        arguments,
        read_page(arguments, lambda: target.store.by_number(number, limit=arguments.limit, cursor=arguments.cursor)),
        RECORD_COLUMNS,
    )
    return 0


def command_binding(target: Target, arguments: argparse.Namespace) -> int:
    page = read_page(
        arguments,
        lambda: target.store.by_binding(
            bind_id=arguments.bind_id,
            customer_bind_id=arguments.customer_bind_id,
            limit=arguments.limit,
            cursor=arguments.cursor,
        ),
    )
    emit_page(arguments, page, RECORD_COLUMNS)
    return 0
