"""Pure functions from a parsed NXCLOUD payload to a :class:`CallRecord`.

Each mapper validates the payload with its model, adds the normalised forms beside the
original values (``<time>Utc``/``<time>Ms``, ``<code>Name``) and picks the lookup
fields. No I/O, no clock: the same input always gives the same record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from . import enums
from .models import CcCdrRecord, CcReport, PnsBindingNotExist, PnsCallResult
from .phones import normalise_number
from .records import CallRecord, completeness, content_hash
from .storable import number_ok
from .times import epoch_ms, from_epoch, from_local_string, iso_utc


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
        self.latest_ms = 0

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
                    data, path = _without(data, tuple(error["loc"]))
                    dropped = dropped or path is not None
                    # The field and pydantic's reason only: the value may be a number.
                    self.problems.append(f"{path or 'body'}: {error['msg']}")
                if not dropped:
                    # Nothing to drop: a field name pydantic cannot read at all (JSON's
                    # lone surrogate escapes). Validate the names escaped instead.
                    escaped = _escape_surrogates(data)
                    if escaped == data:
                        break
                    data = escaped
        return model.model_validate(data)  # raises: the caller quarantines the body

    def time(self, convert: Callable[[], datetime | None], name: str) -> datetime | None:
        try:
            moment = convert()
        except (ValueError, OverflowError, OSError) as exc:
            self.problems.append(f"{name}: not a time ({str(exc)[:80]})")
            return None
        if moment is not None:
            self.latest_ms = max(self.latest_ms, epoch_ms(moment))
        return moment

    def add_time(self, fields: dict[str, Any], name: str, convert: Callable[[], datetime | None]) -> datetime | None:
        moment = self.time(convert, name)
        if moment is not None:
            fields[f"{name}Utc"] = iso_utc(moment)
            fields[f"{name}Ms"] = epoch_ms(moment)
        return moment

    def number(self, name: str, value: int | None) -> int | None:
        """A number used for lookups, left out when DynamoDB could not hold it."""
        if value is None or number_ok(value):
            return value
        self.problems.append(f"{name}: number out of range")
        return None

    def record(self, kind: str, payload: dict[str, Any], raw: str, **values: Any) -> CallRecord:
        return CallRecord(
            kind=kind,
            raw=raw,
            content_hash=content_hash(payload),
            completeness=completeness(payload),
            latest_ms=self.latest_ms,
            problems=tuple(self.problems),
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


def _without(data: dict[str, Any], loc: tuple[Any, ...]) -> tuple[dict[str, Any], str | None]:
    """``data`` without the field at ``loc`` (the nearest object key on its path) and
    that field's dotted path; ``data`` itself and its path None when there is none.
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
        return cast("dict[str, Any]", copied), ".".join(str(part) for part in loc[: last + 1])
    return data, None


def _add_name(fields: dict[str, Any], name: str, table: Any, value: int | None) -> None:
    readable = enums.name_of(table, value)
    if readable is not None:
        fields[f"{name}Name"] = readable


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if number_ok(value) else None


def _unknown(model: BaseModel) -> tuple[str, ...]:
    return tuple(sorted(model.model_extra or {}))


def _require_id(value: str, name: str) -> str:
    value = value.strip()
    if not value:
        raise MissingIdError(f"the payload has no {name}, which identifies its record")
    return value


def map_pns_call_result(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    norm = Normaliser()
    model = norm.validate(PnsCallResult, payload)
    call_id = _require_id(model.callId, "callId")
    fields = model.model_dump()
    start = norm.add_time(fields, "startAt", lambda: from_epoch(model.startAt, unit="s"))
    norm.add_time(fields, "answerAt", lambda: from_epoch(model.answerAt, unit="s"))
    norm.add_time(fields, "hangupAt", lambda: from_epoch(model.hangupAt, unit="s"))
    _add_name(fields, "callStatus", enums.PNS_CALL_STATUS, model.callStatus)
    _add_name(fields, "hangup", enums.PNS_HANGUP, model.hangup)
    if model.hangupCode:
        _add_name(fields, "hangupCode", enums.Q850_CAUSE, model.hangupCode)
    return norm.record(
        "pns_call_result",
        payload,
        raw,
        nxcloud_id=call_id,
        start=start,
        caller=normalise_number(model.caller),
        callee=normalise_number(model.callee),
        did=normalise_number(model.did),
        bind_id=model.bindId.strip() or None,
        customer_bind_id=model.customerBindId.strip() or None,
        duration_sec=norm.number("duration", model.duration),
        status_name=fields.get("callStatusName"),
        fields=fields,
        unknown_fields=_unknown(model),
    )


def map_pns_binding_not_exist(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    norm = Normaliser()
    model = norm.validate(PnsBindingNotExist, payload)
    request_id = _require_id(model.requestId, "requestId")
    fields = model.model_dump()
    occurred = norm.add_time(
        fields["data"], "occurrenceTime", lambda: from_local_string(model.data.occurrenceTime, zone)
    )
    _add_name(fields, "code", enums.PNS_ERROR_CODE, model.code)
    return norm.record(
        "pns_binding_not_exist",
        payload,
        raw,
        nxcloud_id=request_id,
        start=occurred,
        caller=normalise_number(model.data.requestParams.caller),
        did=normalise_number(model.data.requestParams.did),
        status_name=fields.get("codeName"),
        fields=fields,
        unknown_fields=_unknown(model),
    )


def map_cc_report(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    norm = Normaliser()
    model = norm.validate(CcReport, payload)
    session_id = _require_id(model.callSessionId, "callSessionId")
    fields = model.model_dump()
    start = norm.add_time(fields, "callStartTime", lambda: from_local_string(model.callStartTime, zone))
    norm.add_time(fields, "answerTime", lambda: from_local_string(model.answerTime, zone))
    norm.add_time(fields, "callEndTime", lambda: from_local_string(model.callEndTime, zone))
    _add_name(fields, "callType", enums.CC_CALL_TYPE, model.callType)
    _add_name(fields, "hangupReason", enums.CC_HANGUP_REASON, model.hangupReason)
    _add_name(fields, "hangingDirection", enums.CC_HANGING_DIRECTION, model.hangingDirection)
    for name in ("baseCost", "cost"):
        text = getattr(model, name)
        amount = _decimal(text)
        if amount is not None:
            fields[f"{name}Usd"] = amount
        elif text.strip():
            norm.problems.append(f"{name}: not an amount DynamoDB can hold as a number")
    return norm.record(
        "cc_report",
        payload,
        raw,
        nxcloud_id=session_id,
        start=start,
        caller=normalise_number(model.caller),
        callee=normalise_number(model.called),
        duration_sec=norm.number("callDuration", model.callDuration),
        status_name=fields.get("hangupReasonName"),
        fields=fields,
        unknown_fields=_unknown(model),
    )


def queue_duration_ms(value: int | None, in_queue_ms: int | None, out_queue_ms: int | None) -> int | None:
    """``queueDuration`` is documented in seconds but sent in milliseconds too; the
    queue times, when both are there, tell which unit this value is in."""
    if value is None:
        return None
    if in_queue_ms and out_queue_ms and out_queue_ms >= in_queue_ms:
        measured = out_queue_ms - in_queue_ms
        return value if abs(value - measured) < abs(value * 1000 - measured) else value * 1000
    return value * 1000


_CDR_TIMES = ("startTime", "answerTime", "endTime", "ringTime", "inQueueTime", "outQueueTime")


def map_cc_cdr(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    """A call-centre CDR record (page API, and the NXCC call-log callback)."""
    norm = Normaliser()
    model = norm.validate(CcCdrRecord, payload)
    call_id = _require_id(model.callId, "callId")
    fields = model.model_dump()
    times = {name: norm.add_time(fields, name, partial(from_epoch, getattr(model, name))) for name in _CDR_TIMES}
    _add_name(fields, "direction", enums.CDR_DIRECTION, model.direction)
    _add_name(fields, "hangupBy", enums.CDR_HANGUP_BY, model.hangupBy)
    queue_ms = queue_duration_ms(model.queueDuration, model.inQueueTime, model.outQueueTime)
    queue_ms = norm.number("queueDuration", queue_ms)
    if queue_ms is not None:
        fields["queueDurationMs"] = queue_ms
    return norm.record(
        "cc_cdr",
        payload,
        raw,
        nxcloud_id=call_id,
        start=times["startTime"],
        caller=normalise_number(model.caller),
        callee=normalise_number(model.callee),
        duration_sec=norm.number("callDuration", model.callDuration),
        status_name=model.callStatus.strip() or None,
        fields=fields,
        unknown_fields=_unknown(model),
    )
