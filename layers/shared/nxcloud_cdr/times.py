"""Time normalisation: every NXCLOUD time also as UTC ISO-8601 and epoch milliseconds.

NXCLOUD sends three kinds of time: epoch seconds (PNS pushes), epoch milliseconds
(CDR page API, call-log callback) and ``yyyy-MM-dd HH:mm:ss`` strings without a zone
(binding-not-exist and call-centre pushes), which are local to a zone that is
configuration (UTC+8 by default, see the notes on snowflake ids). ``0`` and ``""``
mean "not set" (an unanswered call has no answer time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
# NXCLOUD's default: PNS snowflake ids decode to UTC+8 (NxcloudTimezone's default).
DEFAULT_ZONE = timezone(timedelta(hours=8))
# Epoch values above this are milliseconds: 1e11 seconds is the year 5138.
_MS_THRESHOLD = 100_000_000_000


def parse_zone(text: str) -> tzinfo:
    """A zone from ``+08:00``, ``UTC+8``, ``-0530``, ``UTC`` or an IANA name.

    Fixed offsets need no tz database, so the default works on any runtime.
    """
    value = text.strip()
    if value.upper() in {"UTC", "Z", "GMT"}:
        return UTC
    match = _OFFSET.match(value)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=14):
            raise ValueError(f"time zone offset out of range: {text!r}")
        return timezone(-delta if sign == "-" else delta)
    # Imported here: most deployments use a fixed offset and skip its cold-start cost.
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {text!r}") from exc


def from_epoch(value: int | float | None, *, unit: str = "auto") -> datetime | None:
    """An aware UTC datetime from epoch seconds or milliseconds; ``None`` for 0/None.

    ``unit`` is ``"s"``, ``"ms"`` or ``"auto"`` (NXCLOUD's docs mix the two units for
    the same field, so ``auto`` decides by magnitude).
    """
    if value is None or value <= 0:
        return None
    if unit == "ms" or (unit == "auto" and value >= _MS_THRESHOLD):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return datetime.fromtimestamp(value, tz=UTC)


def from_local_string(value: str | None, zone: tzinfo) -> datetime | None:
    """An aware UTC datetime from a zone-less ``yyyy-MM-dd HH:mm:ss`` string.

    Empty strings and NXCLOUD's zero dates (``0000-00-00 00:00:00``, ``1970-01-01 ...``
    at or before the epoch) mean "not set". Raises ``ValueError`` on anything else
    that does not parse, so that the caller can reject the payload clearly.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or text.startswith("0000-00-00"):
        return None
    local = datetime.strptime(text, _LOCAL_FORMAT).replace(tzinfo=zone)
    moment = local.astimezone(UTC)
    if moment.timestamp() <= 0:
        return None
    return moment


def iso_utc(moment: datetime) -> str:
    """``2022-12-19T09:00:52.000Z``: fixed width, so strings sort in time order."""
    m = moment.astimezone(UTC)
    # Formatted by hand: several per push, and strftime is the slowest part of it.
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}."
        f"{m.microsecond // 1000:03d}Z"
    )


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def month_bucket(moment: datetime) -> str:
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}"


def now_utc() -> datetime:
    return datetime.now(tz=UTC)
