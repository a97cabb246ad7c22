"""nxcdr: look at stored records, replay quarantined pushes, run the sync, print and rotate the push URLs.

Works against the local stack (``make local``; the default when it is running) and
against a deployed stack (``--stack NAME``, with boto3's usual profile and region).
Run it as ``./nxcdr`` from the repository. Tables by default, ``--json`` on request.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import string
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
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError
from nxcloud_cdr.kinds import PUSH_KINDS, normalised
from nxcloud_cdr.lookups import LookupOffError, Page, decode_cursor
from nxcloud_cdr.phones import normalise_number
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.store_errors import StoreError
from nxcloud_cdr.times import from_epoch, iso_utc, now_utc, parse_zone

# A run of the sync may take the function's whole timeout; an Invoke is never repeated.
INVOKE_CONFIG = Config(read_timeout=960, connect_timeout=10, retries={"total_max_attempts": 1})
# The repository (tools/ is at its top), where `make local` (devtools/local_stack.py)
# writes the local stack's state.
REPO = Path(__file__).resolve().parents[1]
LOCAL_STATE = Path(os.environ.get("NXCDR_LOCAL_STATE") or REPO / ".local" / "stack.json")
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
# Every stored kind: each has a push (the sync's kind, nxcloud_cdr.sync.KIND, too).
RECORD_KINDS = tuple(PUSH_KINDS)
LIST_DEFAULT_KIND = "pns_call_result"
# Quarantine reasons a deployed fix can change (a field the models could not read, a
# mapping bug, a write that failed, a limit raised). The others are the body itself
# (not JSON, not UTF-8, no id...): replaying it gives the same answer; --force anyway.
REPLAYABLE_REASONS = ("invalid_fields", "unprocessable", "unstorable", "too_large")
# The template's PushTokenOverlapHours default, for stacks that predate the parameter.
DEFAULT_OVERLAP_HOURS = 72
DEFAULT_TIMEZONE = "+08:00"
# Like the token the stack generates (40 characters, no punctuation): safe in a URL
# path, a shell and a double-click. 40 x log2(62) = 238 bits.
TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 40


# A presigned URL works 7 days at most (SigV4).
MAX_URL_SECONDS = 7 * 24 * 3600


class OperatorError(Exception):
    """Something the operator asked that cannot be done as asked (a backwards range, a
    cursor of another listing, a file that would be replaced): main prints its message
    as one line and exits 2. Anything else that is not an AWS error is a bug: its
    traceback is shown."""


class Parser(argparse.ArgumentParser):
    """argparse's parser, its errors one line (the usage is a --help away)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


@dataclass
class Target:
    store: CallStore
    lambda_client: Any
    sync_function: str
    api_url: str
    # Read only when needed (a replay): for a deployed stack it is a Secrets Manager call.
    push_token: Callable[[], str]
    # Deployed stacks only: makes a value the secret's AWSCURRENT version (a rotation).
    put_push_token: Callable[[str], None] | None = None
    # When the last rotation made the current token (None: never rotated).
    last_rotation: Callable[[], datetime | None] = lambda: None
    stack: str | None = None
    overlap_hours: int = DEFAULT_OVERLAP_HOURS
    # The stack's NxcloudTimezone: how the normalised fields are rebuilt from raw.
    timezone: str = DEFAULT_TIMEZONE
    # The recordings bucket and an S3 client for it (None: a stack from before recordings).
    s3: Any = None
    recordings_bucket: str | None = None


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
        timezone=str(state.get("timezone") or DEFAULT_TIMEZONE),
        s3=session.client("s3", endpoint_url=state["s3"]) if state.get("s3") else None,
        recordings_bucket=state.get("recordingsBucket"),
    )


def deployed_target(stack: str, profile: str | None, region: str | None) -> Target:
    session = boto3.Session(profile_name=profile, region_name=region)
    description = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in description.get("Outputs", [])}
    parameters = {item["ParameterKey"]: item.get("ParameterValue") for item in description.get("Parameters", [])}
    needed = (
        "CallRecordsTableName",
        "QuarantineTableName",
        "CcCdrSyncFunctionName",
        "PushApiUrl",
        "PushTokenSecretArn",
    )
    if missing := [name for name in needed if name not in outputs]:
        raise SystemExit(f"stack {stack} has no output {', '.join(missing)}: is it an nxcloud-cdr stack?")

    secret_id = outputs["PushTokenSecretArn"]
    secrets_manager = session.client("secretsmanager")

    def put_push_token(value: str) -> None:
        # Secrets Manager labels the new version AWSCURRENT and moves AWSPREVIOUS to
        # the version that was current: the functions accept both during the overlap.
        secrets_manager.put_secret_value(SecretId=secret_id, SecretString=value)

    def last_rotation() -> datetime | None:
        try:
            secrets_manager.get_secret_value(SecretId=secret_id, VersionStage="AWSPREVIOUS")
        except secrets_manager.exceptions.ResourceNotFoundException:
            return None
        created: datetime = secrets_manager.get_secret_value(SecretId=secret_id)["CreatedDate"]
        return created

    return Target(
        store=CallStore(session.client("dynamodb"), outputs["CallRecordsTableName"], outputs["QuarantineTableName"]),
        lambda_client=session.client("lambda", config=INVOKE_CONFIG),
        sync_function=outputs["CcCdrSyncFunctionName"],
        api_url=outputs["PushApiUrl"],
        push_token=lambda: str(secrets_manager.get_secret_value(SecretId=secret_id)["SecretString"]).strip(),
        put_push_token=put_push_token,
        last_rotation=last_rotation,
        stack=stack,
        overlap_hours=int(parameters.get("PushTokenOverlapHours") or DEFAULT_OVERLAP_HOURS),
        timezone=str(parameters.get("NxcloudTimezone") or DEFAULT_TIMEZONE),
        # SigV4, so that a presigned URL works under the bucket's TLS-only, encrypted policy.
        s3=session.client("s3", config=Config(signature_version="s3v4")),
        recordings_bucket=outputs.get("RecordingsBucketName"),
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


def time_argument(text: str) -> str:
    """An argparse type: the text, once known to be a time (a one-line error if not)."""
    try:
        parse_time(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (ISO-8601 such as 2024-05-01T08:00:00+08:00, or a time ago: 2d, 36h, 90m)"
        ) from None
    return text


def time_range(arguments: argparse.Namespace, *, default_days: int = 7) -> tuple[datetime, datetime]:
    """--since and --to as times: --to defaults to now, --since to ``default_days``
    before --to; a --since after --to is refused (DynamoDB's raw error otherwise)."""
    end = parse_time(arguments.to) if arguments.to else now_utc()
    start = parse_time(arguments.since) if arguments.since else end - timedelta(days=default_days)
    if start > end:
        to = f"--to {arguments.to} ({_iso(end)})" if arguments.to else f"now ({_iso(end)})"
        raise OperatorError(f"--since {arguments.since} ({_iso(start)}) is after {to}: the range is backwards")
    return start, end


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of 1 or more: {text!r}")
    return value


def url_seconds(text: str) -> int:
    """An argparse type: how long a presigned URL works, 1 s to 7 days."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_URL_SECONDS:
        raise argparse.ArgumentTypeError(
            f"not a number of seconds from 1 to {MAX_URL_SECONDS} (7 days, a presigned URL's longest): {text!r}"
        )
    return value


def cursor_argument(text: str) -> str:
    """An argparse type: the text, once known to decode as a cursor."""
    try:
        decode_cursor(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a cursor: {text!r} (give the one the previous page of the same command printed)"
        ) from None
    return text


def _page(arguments: argparse.Namespace, read: Callable[[], Page]) -> Page:
    """A page read with the --cursor given: a cursor of another listing (it decodes,
    but is not a position of this one) is one line, not a traceback or DynamoDB's
    ValidationException."""
    if not arguments.cursor:
        return read()
    try:
        return read()
    except LookupOffError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, ParamValidationError):
        pass  # a position of another listing's shape
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationException":
            raise
    raise OperatorError(
        f"--cursor {arguments.cursor} is not a cursor of this listing: give the one its previous page printed"
    )


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
    zone = parse_zone(target.timezone)
    for item in items:
        item["versions"] = target.store.versions(arguments.id, str(item["kind"]))
        item["fields"], item["unknownFields"] = normalised(item, zone)
    if arguments.json:
        _emit(arguments, items, "")
        return 0
    for item in items:
        summary = render_table([item], RECORD_COLUMNS)
        fields = json.dumps(_plain(item.get("fields", {})), indent=2, ensure_ascii=False, sort_keys=True)
        sources = ", ".join(item.get("sources") or [item.get("source", "")])
        first = item.get("receivedAt", "")
        seen = f"first received {first}, last {item.get('lastSeenAt') or first}"
        # An item that shows the join of its copies (README, "Data model") has their call summary.
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
                f"  {name}: archived ({_plain(entry.get('bytes'))} bytes, {entry.get('archivedAt', '?')}):"
                f" `nxcdr recording {item.get('nxcloudId', '')}`"
            )
        else:
            word = "retrying" if entry.get("retryable") else "failed"
            attempts = _plain(entry.get("attempts", 0))
            when = f"first {entry.get('firstFailedAt', '?')}, last {entry.get('failedAt', '?')}"
            error = " ".join(str(entry.get("error", "")).split())
            lines.append(f"  {name}: {word}: {entry.get('reason', '?')} after {attempts} attempts ({when}): {error}")
    return lines


def command_list(target: Target, arguments: argparse.Namespace) -> int:
    start, end = time_range(arguments)
    kind = arguments.kind or LIST_DEFAULT_KIND
    page = _page(
        arguments, lambda: target.store.by_time(kind, start, end, limit=arguments.limit, cursor=arguments.cursor)
    )
    _emit_page(arguments, page)
    if not arguments.kind and not arguments.json:
        # Said every time: the sync's records are another kind, and an empty list of
        # the default kind must not read as "nothing stored".
        others = ", ".join(name for name in RECORD_KINDS if name != kind)
        sys.stdout.write(f"(kind {kind}, the default; --kind for {others})\n")
    return 0


def command_number(target: Target, arguments: argparse.Namespace) -> int:
    number = normalise_number(arguments.number) or arguments.number
    _emit_page(
        arguments,
        _page(arguments, lambda: target.store.by_number(number, limit=arguments.limit, cursor=arguments.cursor)),
    )
    return 0


def command_binding(target: Target, arguments: argparse.Namespace) -> int:
    page = _page(
        arguments,
        lambda: target.store.by_binding(
            bind_id=arguments.bind_id,
            customer_bind_id=arguments.customer_bind_id,
            limit=arguments.limit,
            cursor=arguments.cursor,
        ),
    )
    _emit_page(arguments, page)
    return 0


def command_quarantine(target: Target, arguments: argparse.Namespace) -> int:
    page = _page(arguments, lambda: target.store.list_quarantine(limit=arguments.limit, cursor=arguments.cursor))
    _emit_page(arguments, page, QUARANTINE_COLUMNS)
    return 0


def confirm(question: str) -> bool:
    """Ask on the terminal (stderr, so that --json output stays clean); no terminal, no."""
    if not sys.stdin.isatty():
        sys.stderr.write(f"{question}\nnot done: no terminal to ask on (--yes does it without asking)\n")
        return False
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


def push_urls(target: Target, token: str) -> dict[str, str]:
    """The push URL of each push kind, with ``token`` in it."""
    base = target.api_url.rstrip("/")
    return {name: base + kind.path.replace("{token}", token) for name, kind in PUSH_KINDS.items()}


def _emit_urls(arguments: argparse.Namespace, urls: dict[str, str], extra: dict[str, Any], note: str = "") -> None:
    table = render_table([{"kind": kind, "url": url} for kind, url in urls.items()], ("kind", "url"))
    _emit(arguments, {"urls": urls, **extra}, table + (f"\n\n{note}" if note else ""))


def command_urls(target: Target, arguments: argparse.Namespace) -> int:
    _emit_urls(arguments, push_urls(target, target.push_token()), {"stack": target.stack})
    return 0


def new_push_token() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def command_rotate_token(target: Target, arguments: argparse.Namespace) -> int:
    if target.put_push_token is None:
        sys.stderr.write(
            "rotate-token is for deployed stacks (--stack NAME). Locally the token is PUSH_TOKEN in local.env "
            "(PUSH_TOKEN_PREVIOUS keeps an old one accepted): edit it and restart `make local`.\n"
        )
        return 1
    hours = target.overlap_hours
    last = target.last_rotation()
    if last is not None and now_utc() < last + timedelta(hours=hours) and not arguments.force:
        sys.stderr.write(
            f"the last rotation was at {_iso(last)}: the URLs before it are accepted until "
            f"{_iso(last + timedelta(hours=hours))}, and another rotation now refuses them at once "
            "(only one previous token is kept); --force rotates anyway\n"
        )
        return 1
    question = (
        f"rotate the push token of stack {target.stack}? The current push URLs keep working for {hours} hours only."
    )
    if not arguments.yes and not confirm(question):
        sys.stderr.write("not rotated\n")
        return 1
    token = new_push_token()
    target.put_push_token(token)
    note = (
        "The push token is rotated. Give NXCLOUD these new URLs (PNS URLs to NXCLOUD's team; the call-centre report\n"
        "URL under Account Management -> Voice Application Management; the call-log callback's URL AND its token\n"
        "field, the new token, in Call Center Settings). The functions accept the new token within\n"
        f"5 minutes; the old URLs keep working for {hours} hours (PushTokenOverlapHours), then get 403.\n"
        "Rotate again only after that: only one previous token is accepted."
    )
    _emit_urls(arguments, push_urls(target, token), {"stack": target.stack, "previousAcceptedForHours": hours}, note)
    return 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sync_window(item: dict[str, Any]) -> tuple[datetime, datetime]:
    """The call-time window that re-reads a quarantined sync record: the one the sync
    read it in when the item says, else an hour around the record's start time, else
    the day before it was quarantined."""
    start, end = (
        from_epoch(_plain(item.get("windowFrom")), unit="s"),
        from_epoch(_plain(item.get("windowTo")), unit="s"),
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
            f"  ./nxcdr{stack} sync --since {_iso(start)} --to {_iso(end)}\n"
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
    _emit(
        arguments,
        {"status": status, "answer": json.loads(answer) if answer.startswith("{") else answer},
        f"{status} {answer}",
    )
    return 0 if status == 200 else 2


RECORDING_COLUMNS = ("callStartUtc", "kind", "nxcloudId", "recordingState", "recordings")


def _recording_summary(item: dict[str, Any]) -> dict[str, Any]:
    """A row of `recordings`: each recording's name and how it stands."""
    entries = item.get("recordings") or {}
    shown = []
    for name, entry in sorted(entries.items()):
        if entry.get("status") == "archived":
            shown.append(f"{name}: archived")
        else:
            shown.append(f"{name}: {entry.get('reason', '?')} x{entry.get('attempts', 0)} ({entry.get('error', '')})")
    return {**item, "recordings": "; ".join(shown) or "(none tried yet)"}


def _recording_page(target: Target, arguments: argparse.Namespace) -> Page:
    return _page(arguments, lambda: _recording_page_read(target, arguments))


def _recording_page_read(target: Target, arguments: argparse.Namespace) -> Page:
    if arguments.action == "backfill":
        return target.store.unmarked_records(limit=arguments.limit, cursor=arguments.cursor)
    if arguments.pending:
        return target.store.pending_recordings(limit=arguments.limit, cursor=arguments.cursor)
    return target.store.recording_failures(limit=arguments.limit, cursor=arguments.cursor)


def command_recordings(target: Target, arguments: argparse.Namespace) -> int:
    page = _recording_page(target, arguments)
    if arguments.action == "list":
        rows = page.items if arguments.json else [_recording_summary(item) for item in page.items]
        _emit_page(arguments, Page(rows, page.cursor), RECORDING_COLUMNS)
        return 0
    # retry: each listed record marked pending again; the stream hands it to the archiver.
    from nxcloud_cdr.recordings.archiver import hand_back, links_of  # noqa: PLC0415

    if arguments.action == "backfill":  # of the records scanned, those with a link
        page = Page([item for item in page.items if links_of(item)], page.cursor)
    which = {"backfill": "unarchived", "retry": "pending" if arguments.pending else "failed"}[arguments.action]
    if not page.items:
        more = f" in this page; the next with --cursor {page.cursor}" if page.cursor else ""
        sys.stdout.write(f"no record has {which} recordings{more}\n")
        return 0
    if not arguments.yes and not confirm(f"archive the recordings of {len(page.items)} records again?"):
        return 1
    retried = 0
    for listed in page.items:
        key = {"pk": listed["pk"], "sk": listed["sk"]}
        retried += hand_back(target.store.client, target.store.table_name, key, force=True)
    more = f"; the next {arguments.limit} with --cursor {page.cursor}" if page.cursor else ""
    sys.stdout.write(f"{retried} records handed to the archiver again{more}\n")
    return 0


def _archived(target: Target, arguments: argparse.Namespace) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    found = []
    for item in target.store.get(arguments.id, arguments.kind):
        for name, entry in sorted((item.get("recordings") or {}).items()):
            if entry.get("status") == "archived" and (arguments.name is None or name == arguments.name):
                found.append((item, name, entry))
    return found


def command_recording(target: Target, arguments: argparse.Namespace) -> int:
    if target.s3 is None or not target.recordings_bucket:
        sys.stderr.write("this stack has no recordings bucket (deployed before recordings were archived)\n")
        return 1
    found = _archived(target, arguments)
    if not found:
        sys.stderr.write(f"no archived recording of {arguments.id} (`nxcdr show {arguments.id}` says why)\n")
        return 1
    files = _download_paths(found, arguments) if arguments.download else {}
    rows = []
    for item, name, entry in found:
        row = {"kind": item["kind"], "recording": name, "bytes": entry.get("bytes"), "sha256": entry.get("sha256")}
        row["s3Key"] = entry["s3Key"]
        if arguments.download:
            row["file"] = str(_download(target, entry, files[(str(item["kind"]), name)]))
        elif not _exists(target, entry["s3Key"]):
            row["url"] = "(deleted: the bucket's lifecycle expired it, RecordingExpiryDays)"
        else:
            row["url"] = target.s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": target.recordings_bucket, "Key": entry["s3Key"]},
                ExpiresIn=arguments.expires,
            )
        rows.append(row)
    columns = ("kind", "recording", "bytes", "file" if arguments.download else "url")
    if arguments.json or arguments.download:
        _emit(arguments, rows, render_table(rows, columns))
    else:
        for row in rows:  # URLs are long: one per line, whole
            sys.stdout.write(f"{row['kind']} {row['recording']} ({row['bytes']} bytes):\n{row['url']}\n")
    return 0


def _exists(target: Target, key: str) -> bool:
    """False when S3 says the object is gone; True otherwise (an operator allowed to
    read objects but not to list the bucket gets 403 for a missing one: the URL is
    printed all the same)."""
    try:
        target.s3.head_object(Bucket=target.recordings_bucket, Key=key)
    except ClientError as error:
        return str(error.response.get("Error", {}).get("Code")) not in ("404", "NoSuchKey", "NotFound")
    return True


def download_name(kind: str, name: str, key: str) -> str:
    """The file a recording is saved as: its key's id part, its kind and its name
    (``<id>.<kind>.<name>.<ext>``): one file per recording, whatever kinds hold the id.
    Kinds and names have no dot, so no two recordings share a name."""
    stem, dot, extension = key.rsplit("/", 1)[-1].rpartition(".")
    if not dot:
        stem, extension = extension, ""
    if name != "call" and stem.endswith(f"-{name}"):  # the key names it already
        stem = stem[: -len(name) - 1]
    return f"{stem}.{kind}.{name}" + (f".{extension}" if extension else "")


def _download_paths(
    found: list[tuple[dict[str, Any], str, dict[str, Any]]], arguments: argparse.Namespace
) -> dict[tuple[str, str], Path]:
    """Where each recording goes in --download's directory, checked before any is
    fetched: the directory exists, and no file is replaced without --force."""
    directory = Path(arguments.download)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise OperatorError(f"--download {directory} {what}: give an existing directory")
    paths = {
        (str(item["kind"]), name): directory / download_name(str(item["kind"]), name, str(entry["s3Key"]))
        for item, name, entry in found
    }
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing and not arguments.force:
        raise OperatorError(f"{', '.join(existing)} already exists: --force replaces it (nothing was downloaded)")
    return paths


def _download(target: Target, entry: dict[str, Any], path: Path) -> Path:
    """The object into ``path``, streamed, checked against the SHA-256 the archiver
    recorded."""
    import hashlib  # noqa: PLC0415

    body = target.s3.get_object(Bucket=target.recordings_bucket, Key=entry["s3Key"])["Body"]
    digest = hashlib.sha256()
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as handle:
        for piece in iter(lambda: body.read(1024 * 1024), b""):
            digest.update(piece)
            handle.write(piece)
    if entry.get("sha256") and digest.hexdigest() != entry["sha256"]:
        partial.unlink()
        raise StoreError(f"{entry['s3Key']}: the object's SHA-256 is not the one recorded when it was archived")
    partial.replace(path)
    return path


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
    columns = [
        key for key in ("mode", "status", "windows", "pages", "new", "updated", "unchanged", "rejected", "lag_seconds")
    ]
    _emit(arguments, result, render_table([result], columns) if "mode" in result else json.dumps(result))
    return 0


def _global_options(parser: argparse.ArgumentParser, *, anywhere: bool) -> None:
    # Given after the subcommand too (`nxcdr list --json`): there they default to
    # SUPPRESS, so that they never reset a value given before it.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if anywhere else value

    parser.add_argument(
        "--stack", default=default(None), help="deployed stack name (default: the local stack of `make local`)"
    )
    parser.add_argument("--profile", default=default(None), help="AWS profile (deployed stacks)")
    parser.add_argument("--region", default=default(None), help="AWS region (deployed stacks)")
    parser.add_argument("--json", action="store_true", default=default(False), help="JSON instead of a table")


def _recording_commands(commands: Any, common: argparse.ArgumentParser, paged: argparse.ArgumentParser) -> None:
    kinds = ", ".join(RECORD_KINDS)
    recordings = commands.add_parser(
        "recordings",
        parents=[common, paged],
        help="records whose recordings failed to archive (or are pending); `retry` hands them to the archiver again",
    )
    recordings.add_argument(
        "action",
        nargs="?",
        choices=("list", "retry", "backfill"),
        default="list",
        help="list (default); retry the listed ones; backfill: archive the recordings of records stored before"
        " the archiver existed (a Scan of the table, --limit records a page)",
    )
    state = recordings.add_mutually_exclusive_group()
    state.add_argument("--failed", action="store_true", help="failed recordings (the default)")
    state.add_argument(
        "--pending", action="store_true", help="not archived yet (reads the whole table: a Scan, paid by its size)"
    )
    recordings.add_argument("--yes", "-y", action="store_true", help="retry without asking")
    recordings.set_defaults(run=command_recordings)

    recording = commands.add_parser(
        "recording", parents=[common], help="a call's archived recordings: presigned URLs, or the files"
    )
    recording.add_argument("id", help="the call's NXCLOUD id")
    recording.add_argument("--kind", choices=RECORD_KINDS, metavar="KIND", help=f"only this kind ({kinds})")
    recording.add_argument("--name", help="only this recording (call, voicemail, leg1...)")
    recording.add_argument("--download", metavar="DIR", help="save the files in DIR instead of printing URLs")
    recording.add_argument("--force", action="store_true", help="with --download: replace files that exist")
    recording.add_argument(
        "--expires",
        type=url_seconds,
        default=3600,
        help=f"seconds the URLs work (default 3600, at most {MAX_URL_SECONDS}: 7 days)",
    )
    recording.set_defaults(run=command_recording)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nxcdr", description=__doc__.splitlines()[0] if __doc__ else None)
    _global_options(parser, anywhere=False)
    common = Parser(add_help=False)
    _global_options(common, anywhere=True)
    commands = parser.add_subparsers(dest="command", required=True)
    kinds = ", ".join(RECORD_KINDS)

    show = commands.add_parser("show", parents=[common], help="one record by its NXCLOUD id (every kind that has it)")
    show.add_argument("id")
    show.add_argument("--kind", choices=RECORD_KINDS, metavar="KIND", help=f"only this kind ({kinds})")
    show.set_defaults(run=command_show)

    paged = Parser(add_help=False)
    paged.add_argument("--limit", type=positive_int, default=50, help="items a page (default 50)")
    paged.add_argument("--cursor", type=cursor_argument, help="the cursor a previous page printed")

    listing = commands.add_parser(
        "list", parents=[common, paged], help="records of one kind by call start time, oldest first"
    )
    listing.add_argument("--kind", choices=RECORD_KINDS, metavar="KIND", help=f"{kinds}; default: {LIST_DEFAULT_KIND}")
    listing.add_argument(
        "--since",
        type=time_argument,
        help="ISO-8601 (UTC unless a zone is given) or 2d/36h ago; default: 7 days before --to",
    )
    listing.add_argument("--to", type=time_argument, help="ISO-8601; default: now")
    listing.set_defaults(run=command_list)

    number = commands.add_parser(
        "number", parents=[common, paged], help="records involving a phone number, newest first"
    )
    number.add_argument("number")
    number.set_defaults(run=command_number)

    binding = commands.add_parser("binding", parents=[common, paged], help="calls of one binding, newest first")
    which = binding.add_mutually_exclusive_group(required=True)
    which.add_argument("--bind-id")
    which.add_argument("--customer-bind-id")
    binding.set_defaults(run=command_binding)

    quarantine = commands.add_parser("quarantine", parents=[common, paged], help="bodies kept instead of stored")
    quarantine.set_defaults(run=command_quarantine)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="send a quarantined body to its push URL again (after a fix is deployed)",
        description="Exit status: 0 answered 200, 2 answered otherwise, 1 not replayed.",
    )
    replay.add_argument("id", help="the quarantine id (pk) that `quarantine` lists")
    replay.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    replay.add_argument(
        "--force",
        action="store_true",
        help="replay also a body already replayed, or one whose reason a fix cannot change",
    )
    replay.set_defaults(run=command_replay)

    urls = commands.add_parser("urls", parents=[common], help="the push URLs to give NXCLOUD, token included")
    urls.set_defaults(run=command_urls)

    rotate = commands.add_parser(
        "rotate-token",
        parents=[common],
        help="put a new push token (deployed stacks); the old URLs keep working for PushTokenOverlapHours",
    )
    rotate.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rotate.add_argument(
        "--force", action="store_true", help="rotate even while the token before the last rotation is accepted"
    )
    rotate.set_defaults(run=command_rotate_token)

    sync = commands.add_parser("sync", parents=[common], help="run the CDR sync now, or a backfill with --since/--to")
    sync.add_argument(
        "--since", type=time_argument, help="backfill from (ISO-8601, or 2d / 36h ago); leaves the checkpoint alone"
    )
    sync.add_argument("--to", type=time_argument)
    sync.set_defaults(run=command_sync)

    _recording_commands(commands, common, paged)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        target = (
            deployed_target(arguments.stack, arguments.profile, arguments.region) if arguments.stack else local_target()
        )
        code: int = arguments.run(target, arguments)
    except OperatorError as error:
        sys.stderr.write(f"nxcdr: {error}\n")
        return 2
    except NoCredentialsError:
        sys.stderr.write("nxcdr: no AWS credentials found: use --profile, or set them as boto3 reads them\n")
        return 1
    except (BotoCoreError, ClientError, StoreError, LookupOffError) as error:
        sys.stderr.write("nxcdr: " + " ".join(str(error).split()) + "\n")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
