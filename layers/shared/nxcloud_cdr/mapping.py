"""Pure functions from a parsed NXCLOUD payload to a :class:`CallRecord`.

Each mapper validates the payload with its model, adds the normalised forms beside the
original values (``<time>Utc``/``<time>Ms``, ``<code>Name``) and picks the lookup
fields. No I/O, no clock: the same input always gives the same record.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from . import enums
from .models import CcCdrRecord, CcReport, PnsBindingNotExist, PnsCallResult
from .phones import normalise_number
from .records import CallRecord, completeness, content_hash
from .times import epoch_ms, from_epoch, from_local_string, iso_utc


class MissingIdError(ValueError):
    """The payload lacks the id that identifies its record."""


def _add_time(fields: dict[str, Any], name: str, moment: datetime | None) -> None:
    if moment is not None:
        fields[f"{name}Utc"] = iso_utc(moment)
        fields[f"{name}Ms"] = epoch_ms(moment)


def _add_name(fields: dict[str, Any], name: str, table: Any, value: int | None) -> None:
    readable = enums.name_of(table, value)
    if readable is not None:
        fields[f"{name}Name"] = readable


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _unknown(model: BaseModel) -> tuple[str, ...]:
    return tuple(sorted(model.model_extra or {}))


def _require_id(value: str, name: str) -> str:
    value = value.strip()
    if not value:
        raise MissingIdError(f"the payload has no {name}, which identifies its record")
    return value


def _record(kind: str, payload: dict[str, Any], raw: str, **values: Any) -> CallRecord:
    return CallRecord(
        kind=kind,
        raw=raw,
        content_hash=content_hash(payload),
        completeness=completeness(payload),
        **values,
    )


def map_pns_call_result(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    model = PnsCallResult.model_validate(payload)
    call_id = _require_id(model.callId, "callId")
    fields = model.model_dump()
    start = from_epoch(model.startAt, unit="s")
    _add_time(fields, "startAt", start)
    _add_time(fields, "answerAt", from_epoch(model.answerAt, unit="s"))
    _add_time(fields, "hangupAt", from_epoch(model.hangupAt, unit="s"))
    _add_name(fields, "callStatus", enums.PNS_CALL_STATUS, model.callStatus)
    _add_name(fields, "hangup", enums.PNS_HANGUP, model.hangup)
    if model.hangupCode:
        _add_name(fields, "hangupCode", enums.Q850_CAUSE, model.hangupCode)
    return _record(
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
        duration_sec=model.duration,
        status_name=fields.get("callStatusName"),
        fields=fields,
        unknown_fields=_unknown(model),
    )


def map_pns_binding_not_exist(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    model = PnsBindingNotExist.model_validate(payload)
    request_id = _require_id(model.requestId, "requestId")
    fields = model.model_dump()
    occurred = from_local_string(model.data.occurrenceTime, zone)
    _add_time(fields["data"], "occurrenceTime", occurred)
    _add_name(fields, "code", enums.PNS_ERROR_CODE, model.code)
    return _record(
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
    model = CcReport.model_validate(payload)
    session_id = _require_id(model.callSessionId, "callSessionId")
    fields = model.model_dump()
    start = from_local_string(model.callStartTime, zone)
    _add_time(fields, "callStartTime", start)
    _add_time(fields, "answerTime", from_local_string(model.answerTime, zone))
    _add_time(fields, "callEndTime", from_local_string(model.callEndTime, zone))
    _add_name(fields, "callType", enums.CC_CALL_TYPE, model.callType)
    _add_name(fields, "hangupReason", enums.CC_HANGUP_REASON, model.hangupReason)
    _add_name(fields, "hangingDirection", enums.CC_HANGING_DIRECTION, model.hangingDirection)
    for name in ("baseCost", "cost"):
        amount = _decimal(getattr(model, name))
        if amount is not None:
            fields[f"{name}Usd"] = amount
    return _record(
        "cc_report",
        payload,
        raw,
        nxcloud_id=session_id,
        start=start,
        caller=normalise_number(model.caller),
        callee=normalise_number(model.called),
        duration_sec=model.callDuration,
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


def map_cc_cdr(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    """A call-centre CDR record (page API, and the NXCC call-log callback)."""
    model = CcCdrRecord.model_validate(payload)
    call_id = _require_id(model.callId, "callId")
    fields = model.model_dump()
    start = from_epoch(model.startTime)
    for name in ("startTime", "answerTime", "endTime", "ringTime", "inQueueTime", "outQueueTime"):
        _add_time(fields, name, start if name == "startTime" else from_epoch(getattr(model, name)))
    _add_name(fields, "direction", enums.CDR_DIRECTION, model.direction)
    _add_name(fields, "hangupBy", enums.CDR_HANGUP_BY, model.hangupBy)
    queue_ms = queue_duration_ms(model.queueDuration, model.inQueueTime, model.outQueueTime)
    if queue_ms is not None:
        fields["queueDurationMs"] = queue_ms
    return _record(
        "cc_cdr",
        payload,
        raw,
        nxcloud_id=call_id,
        start=start,
        caller=normalise_number(model.caller),
        callee=normalise_number(model.callee),
        duration_sec=model.callDuration,
        status_name=model.callStatus.strip() or None,
        fields=fields,
        unknown_fields=_unknown(model),
    )
