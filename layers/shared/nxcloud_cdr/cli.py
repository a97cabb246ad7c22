"""nxcdr: look at stored records, replay quarantined pushes, run the sync.

Works against the local stack (``make local``; the default when it is running) and
against a deployed stack (``--stack NAME``, with boto3's usual profile and region).
Run it as ``./nxcdr`` from the repository. Tables by default, ``--json`` on request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from .kinds import PUSH_KINDS
from .phones import normalise_number
from .store import CallStore, Page
from .times import now_utc

# A run of the sync may take the function's whole timeout; an Invoke is never repeated.
INVOKE_CONFIG = Config(read_timeout=960, connect_timeout=10, retries={"total_max_attempts": 1})
# Written by `make local` (devtools/local_stack.py) at the repository's top.
LOCAL_STATE = Path(os.environ.get("NXCDR_LOCAL_STATE") or Path(__file__).resolve().parents[3] / ".local" / "stack.json")
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
QUARANTINE_COLUMNS = ("pk", "reason", "attempts", "lastSeenAt", "bodySize", "replayStatus", "message")


@dataclass
class Target:
    store: CallStore
    lambda_client: Any
    sync_function: str
    api_url: str
    # Read only when needed (a replay): for a deployed stack it is a Secrets Manager call.
    push_token: Callable[[], str]


def local_target(state_path: Path = LOCAL_STATE) -> Target:
    if not state_path.exists():
        raise SystemExit("the local stack is not running: start it with `make local`, or give --stack NAME")
    state = json.loads(state_path.read_text(encoding="utf-8"))
    # The local stack ignores credentials; boto3 only needs some.
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    dynamodb = session.client("dynamodb", endpoint_url=state["dynamodb"])
    return Target(
        store=CallStore(dynamodb, state["tables"]["CallRecordsTable"], state["tables"]["QuarantineTable"]),
        lambda_client=session.client("lambda", endpoint_url=state["api"], config=INVOKE_CONFIG),
        sync_function=state["functions"]["CcCdrSyncFunction"],
        api_url=state["api"],
        push_token=lambda: str(state["pushToken"]),
    )


def deployed_target(stack: str, profile: str | None, region: str | None) -> Target:
    session = boto3.Session(profile_name=profile, region_name=region)
    outputs = {
        output["OutputKey"]: output["OutputValue"]
        for output in session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    }

    secrets = session.client("secretsmanager")
    return Target(
        store=CallStore(session.client("dynamodb"), outputs["CallRecordsTableName"], outputs["QuarantineTableName"]),
        lambda_client=session.client("lambda", config=INVOKE_CONFIG),
        sync_function=outputs["CcCdrSyncFunctionName"],
        api_url=outputs["PushApiUrl"],
        push_token=lambda: str(
            secrets.get_secret_value(SecretId=outputs["PushTokenSecretArn"])["SecretString"]
        ).strip(),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(inner) for inner in value]
    return value


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [
        [str(_plain(row.get(column, "")) if row.get(column) is not None else "") for column in columns] for row in rows
    ]
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


_RELATIVE = {"d": "days", "h": "hours", "m": "minutes"}


def parse_time(text: str) -> datetime:
    """ISO-8601 (UTC unless a zone is given), or a time ago: ``2d``, ``36h``, ``90m``."""
    text = text.strip()
    if len(text) > 1 and text[:-1].isdigit() and text[-1] in _RELATIVE:
        return now_utc() - timedelta(**{_RELATIVE[text[-1]]: int(text[:-1])})
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _emit(arguments: argparse.Namespace, payload: Any, table: str) -> None:
    if arguments.json:
        sys.stdout.write(json.dumps(_plain(payload), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(table + "\n")


def _emit_page(arguments: argparse.Namespace, page: Page, columns: Sequence[str] = RECORD_COLUMNS) -> None:
    footer = f"\n{len(page.items)} shown" + (f"; more with --cursor {page.cursor}" if page.cursor else "")
    _emit(arguments, {"items": page.items, "cursor": page.cursor}, render_table(page.items, columns) + footer)


def command_show(target: Target, arguments: argparse.Namespace) -> int:
    items = target.store.get(arguments.id, arguments.kind)
    if not items:
        sys.stderr.write(f"no record with id {arguments.id}\n")
        return 1
    if arguments.json:
        _emit(arguments, items, "")
        return 0
    for item in items:
        summary = render_table([item], RECORD_COLUMNS)
        fields = json.dumps(_plain(item.get("fields", {})), indent=2, ensure_ascii=False, sort_keys=True)
        sys.stdout.write(f"{summary}\n\nfields:\n{fields}\n\nraw (as received):\n{item.get('raw', '')}\n\n")
    return 0


def command_list(target: Target, arguments: argparse.Namespace) -> int:
    end = parse_time(arguments.to) if arguments.to else now_utc()
    start = parse_time(arguments.since) if arguments.since else end - timedelta(days=7)
    page = target.store.by_time(arguments.kind, start, end, limit=arguments.limit, cursor=arguments.cursor)
    _emit_page(arguments, page)
    return 0


def command_number(target: Target, arguments: argparse.Namespace) -> int:
    number = normalise_number(arguments.number) or arguments.number
    _emit_page(arguments, target.store.by_number(number, limit=arguments.limit, cursor=arguments.cursor))
    return 0


def command_binding(target: Target, arguments: argparse.Namespace) -> int:
    page = target.store.by_binding(
        bind_id=arguments.bind_id,
        customer_bind_id=arguments.customer_bind_id,
        limit=arguments.limit,
        cursor=arguments.cursor,
    )
    _emit_page(arguments, page)
    return 0


def command_quarantine(target: Target, arguments: argparse.Namespace) -> int:
    _emit_page(
        arguments, target.store.list_quarantine(limit=arguments.limit, cursor=arguments.cursor), QUARANTINE_COLUMNS
    )
    return 0


def command_replay(target: Target, arguments: argparse.Namespace) -> int:
    """Send a quarantined body again, byte for byte, to its push URL: after a fix is
    deployed it takes the path NXCLOUD's push takes."""
    item = target.store.quarantined(arguments.id)
    if item is None:
        sys.stderr.write(f"no quarantined body {arguments.id}\n")
        return 1
    kind = PUSH_KINDS.get(str(item["kind"]))
    if kind is None:
        sys.stderr.write(f"{item['kind']} records are not pushed; run a sync or a backfill instead\n")
        return 1
    url = target.api_url.rstrip("/") + kind.path.replace("{token}", target.push_token())
    request = urllib.request.Request(  # noqa: S310 - the stack's own push URL
        url, data=item["body"], method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, answer = response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read().decode("utf-8", errors="replace")
    target.store.mark_replayed(arguments.id, status=status, at=now_utc())
    _emit(
        arguments,
        {"status": status, "answer": json.loads(answer) if answer.startswith("{") else answer},
        f"{status} {answer}",
    )
    return 0 if status == 200 else 2


def command_sync(target: Target, arguments: argparse.Namespace) -> int:
    payload: dict[str, str] = {}
    if arguments.since:
        end = parse_time(arguments.to) if arguments.to else now_utc()
        payload = {"from": parse_time(arguments.since).isoformat(), "to": end.isoformat()}
    response = target.lambda_client.invoke(FunctionName=target.sync_function, Payload=json.dumps(payload).encode())
    result = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        sys.stderr.write(f"sync failed: {result.get('errorType')}: {result.get('errorMessage')}\n")
        return 2
    columns = [
        key for key in ("mode", "status", "windows", "pages", "new", "updated", "unchanged", "rejected", "lag_seconds")
    ]
    _emit(arguments, result, render_table([result], columns) if "mode" in result else json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nxcdr", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack", help="deployed stack name (default: the local stack of `make local`)")
    parser.add_argument("--profile", help="AWS profile (deployed stacks)")
    parser.add_argument("--region", help="AWS region (deployed stacks)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    commands = parser.add_subparsers(dest="command", required=True)

    show = commands.add_parser("show", help="one record by its NXCLOUD id (every kind that has it)")
    show.add_argument("id")
    show.add_argument("--kind", help="only this kind (pns_call_result, pns_binding_not_exist, cc_report, cc_cdr)")
    show.set_defaults(run=command_show)

    paged = argparse.ArgumentParser(add_help=False)
    paged.add_argument("--limit", type=int, default=50)
    paged.add_argument("--cursor", help="the cursor a previous page printed")

    listing = commands.add_parser("list", parents=[paged], help="records of one kind by call start time, oldest first")
    listing.add_argument("--kind", default="pns_call_result")
    listing.add_argument(
        "--since", help="ISO-8601 (UTC unless a zone is given) or 2d/36h ago; default: 7 days before --to"
    )
    listing.add_argument("--to", help="ISO-8601; default: now")
    listing.set_defaults(run=command_list)

    number = commands.add_parser("number", parents=[paged], help="records involving a phone number, newest first")
    number.add_argument("number")
    number.set_defaults(run=command_number)

    binding = commands.add_parser("binding", parents=[paged], help="calls of one binding, newest first")
    which = binding.add_mutually_exclusive_group(required=True)
    which.add_argument("--bind-id")
    which.add_argument("--customer-bind-id")
    binding.set_defaults(run=command_binding)

    quarantine = commands.add_parser("quarantine", parents=[paged], help="bodies kept instead of stored")
    quarantine.set_defaults(run=command_quarantine)

    replay = commands.add_parser("replay", help="send a quarantined body to its push URL again")
    replay.add_argument("id", help="the quarantine id (pk) that `quarantine` lists")
    replay.set_defaults(run=command_replay)

    sync = commands.add_parser("sync", help="run the CDR sync now, or a backfill with --since/--to")
    sync.add_argument("--since", help="backfill from (ISO-8601, or 2d / 36h ago); leaves the checkpoint alone")
    sync.add_argument("--to")
    sync.set_defaults(run=command_sync)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    target = (
        deployed_target(arguments.stack, arguments.profile, arguments.region) if arguments.stack else local_target()
    )
    code: int = arguments.run(target, arguments)
    return code


if __name__ == "__main__":
    sys.exit(main())
