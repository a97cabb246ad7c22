"""Times on the command line: --since and --to, absolute or ago, and how they are printed."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from nxcloud_cdr.times import now_utc

from tools.nxcdr.errors import OperatorError

_RELATIVE = {"d": "days", "h": "hours", "m": "minutes"}
# The longest range a listing or a backfill takes: a month query per month listed, a
# sync window per few minutes of a backfill (10,000 days was 174,544 windows).
MAX_RANGE = timedelta(days=366 * 3)


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
        to = f"--to {arguments.to} ({iso(end)})" if arguments.to else f"now ({iso(end)})"
        raise OperatorError(f"--since {arguments.since} ({iso(start)}) is after {to}: the range is backwards")
    if end - start > MAX_RANGE:
        raise OperatorError(
            f"--since {arguments.since} to {iso(end)} is more than {MAX_RANGE.days} days: give a shorter range"
            " (run it again for the next one)"
        )
    return start, end


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
