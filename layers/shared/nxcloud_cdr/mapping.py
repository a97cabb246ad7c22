"""What every mapper shares: pure functions from a parsed NXCLOUD payload to a
:class:`CallRecord`.

Each kind's mapper (in :mod:`.payloads`) validates the payload with its model, adds the
normalised forms beside the original values (``<time>Utc``/``<time>Ms``,
``<code>Name``) and picks the lookup fields. No I/O, no clock: the same input always
gives the same record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from . import enums
from .outcomes import Direction, HangupBy, Outcome
from .recording_links import recording_links
from .records import CallRecord, completeness, content_hash
from .storable import number_ok
from .times import epoch_ms, iso_utc


class MissingIdError(ValueError):
    """The payload lacks the id that identifies its record."""


# How many rounds of "drop the fields pydantic could not read, validate again" before
# giving up: each round drops at least one field, and models have fewer than this.
_MAX_VALIDATION_ROUNDS = 40

M = TypeVar("M", bound=BaseModel)


class Normaliser:
    """Collects, for one payload, the problems of fields that could not be normalised
    and the latest NXCLOUD time seen. A problem never costs the record: the field's
    normalised form is left out and ``raw`` keeps the value as sent."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        # Where in the payload (keys and list positions) each value the model could not
        # read is: the merge of copies ranks a readable value above such a one.
        self.unreadable: list[tuple[str | int, ...]] = []
        self.latest_ms = 0

    def problem(self, loc: tuple[str | int, ...], why: str) -> None:
        """A value the model could not read, at ``loc`` in the payload."""
        self.unreadable.append(loc)
        self.problems.append(f"{'.'.join(str(part) for part in loc)}: {why}")

    def validate(self, model: type[M], payload: dict[str, Any]) -> M:
        """The payload as ``model``; a field it cannot read is dropped (its default
        used) and noted, rather than rejecting the whole record."""
        data = payload
        for _ in range(_MAX_VALIDATION_ROUNDS):
            try:
                return model.model_validate(data)
            except ValidationError as exc:
                dropped = False
                for error in exc.errors(include_url=False, include_input=False):
                    data, loc = _without(data, tuple(error["loc"]))
                    dropped = dropped or loc is not None
                    # The field and pydantic's reason only: the value may be a number.
                    if loc is None:
                        self.problems.append(f"body: {error['msg']}")
                    else:
                        self.problem(loc, error["msg"])
                if not dropped:
                    # Nothing to drop: a field name pydantic cannot read at all (JSON's
                    # lone surrogate escapes). Validate the names escaped instead.
                    escaped = _escape_surrogates(data)
                    if escaped == data:
                        break
                    data = escaped
        return model.model_validate(data)  # raises: the caller quarantines the body

    def time(self, convert: Callable[[], datetime | None], loc: tuple[str | int, ...]) -> datetime | None:
        try:
            moment = convert()
        except (ValueError, OverflowError, OSError) as exc:
            self.problem(loc, f"not a time ({str(exc)[:80]})")
            return None
        if moment is not None:
            self.latest_ms = max(self.latest_ms, epoch_ms(moment))
        return moment

    def add_time(
        self, fields: dict[str, Any], name: str, convert: Callable[[], datetime | None], at: tuple[str | int, ...] = ()
    ) -> datetime | None:
        """``fields[name]`` with its normalised forms beside it; ``at`` says where
        ``fields`` is in the payload."""
        moment = self.time(convert, (*at, name))
        if moment is not None:
            fields[f"{name}Utc"] = iso_utc(moment)
            fields[f"{name}Ms"] = epoch_ms(moment)
        return moment

    def number(self, loc: tuple[str | int, ...], value: int | None) -> int | None:
        """A number used for lookups (at ``loc``), left out when DynamoDB could not hold it."""
        if value is None or number_ok(value):
            return value
        self.problem(loc, "number out of range")
        return None

    def record(
        self, kind: str, payload: dict[str, Any], raw: str, summary: dict[str, Any], **values: Any
    ) -> CallRecord:
        """The record of a payload; ``summary`` (:func:`call_summary`) joins its fields
        and gives its outcome and talk time."""
        values["fields"][SUMMARY] = summary
        return CallRecord(
            kind=kind,
            unreadable=tuple(self.unreadable),
            raw=raw,
            outcome=summary["outcome"],
            duration_sec=summary.get("durationSec"),
            content_hash=content_hash(payload),
            completeness=completeness(payload),
            latest_ms=self.latest_ms,
            problems=tuple(self.problems),
            recordings=recording_links(kind, payload),
            **values,
        )


def _escape_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escape_surrogates(key): _escape_surrogates(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_escape_surrogates(inner) for inner in value]
    return value


def _without(data: dict[str, Any], loc: tuple[Any, ...]) -> tuple[dict[str, Any], tuple[Any, ...] | None]:
    """``data`` without the field at ``loc`` (the nearest object key on its path) and
    where that field is; ``data`` itself and None when there is none.
    Copies only the containers on the path: the payload is never changed, and a body
    nested deeper than ``copy.deepcopy`` could follow costs nothing more."""
    keys = [index for index, part in enumerate(loc) if isinstance(part, str)]
    for last in reversed(keys):
        chain: list[Any] = [data]
        try:
            for part in loc[:last]:
                chain.append(chain[-1][part])
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(chain[-1], dict) or loc[last] not in chain[-1]:
            continue
        copied: Any = {name: value for name, value in chain[-1].items() if name != loc[last]}
        for depth in range(last - 1, -1, -1):
            parent, part = chain[depth], loc[depth]
            if isinstance(parent, dict):
                copied = {**parent, part: copied}
            else:
                copied = [*parent[:part], copied, *parent[part + 1 :]]
        return cast("dict[str, Any]", copied), tuple(loc[: last + 1])
    return data, None


SUMMARY = "callSummary"


def call_summary(
    *,
    outcome: Outcome,
    start: datetime | None = None,
    ring: datetime | None = None,
    answer: datetime | None = None,
    end: datetime | None = None,
    duration_sec: int | None = None,
    recording_url: str = "",
    hangup_by: HangupBy = "unknown",
    hangup_cause: str = "",
    direction: Direction | None = None,
) -> dict[str, Any]:
    """The call in the words every kind shares (docs/data-model.md), what is known of
    it: the ``callSummary`` of a record's fields."""
    summary: dict[str, Any] = {
        "outcome": outcome,
        "startUtc": iso_utc(start) if start else None,
        "ringUtc": iso_utc(ring) if ring else None,
        "answerUtc": iso_utc(answer) if answer else None,
        "endUtc": iso_utc(end) if end else None,
        "durationSec": duration_sec,
        "recordingUrl": recording_url.strip() or None,
        "hangupBy": hangup_by,
        "hangupCause": hangup_cause.strip() or None,
        "direction": direction,
    }
    return {name: value for name, value in summary.items() if value is not None}


def add_name(fields: dict[str, Any], name: str, table: Any, value: int | None) -> None:
    readable = enums.name_of(table, value)
    if readable is not None:
        fields[f"{name}Name"] = readable


def decimal_amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if number_ok(value) else None


def unknown_fields(model: BaseModel) -> tuple[str, ...]:
    return tuple(sorted(model.model_extra or {}))


def require_id(value: str, name: str) -> str:
    value = value.strip()
    if not value:
        raise MissingIdError(f"the payload has no {name}, which identifies its record")
    return value
