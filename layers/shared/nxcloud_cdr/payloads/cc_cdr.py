"""Call-centre CDR records: the page API the sync reads (``seeds/cc-cdr-page-api.md``);
the NXCC call-log callback sends the same shape."""

from __future__ import annotations

from datetime import tzinfo
from functools import partial
from typing import Any

from .. import enums, outcomes
from ..mapping import Normaliser, add_name, call_summary, require_id, unknown_fields
from ..models import IdStr, LooseFloat, LooseInt, LooseStr, NxModel
from ..phones import normalise_number
from ..records import CallRecord
from ..times import from_epoch


class CcCdrRecord(NxModel):
    """One record of the call-centre CDR page API (``seeds/cc-cdr-page-api.md``); the
    NXCC call-log callback sends the same shape. Every field may be missing."""

    callId: IdStr = ""
    agentName: LooseStr = ""
    agentNickName: LooseStr = ""
    answered: bool | None = None
    answerTime: LooseInt = None
    callDuration: LooseInt = None
    callee: LooseStr = ""
    caller: LooseStr = ""
    direction: LooseInt = None
    dtmfKeys: LooseStr = ""
    endTime: LooseInt = None
    hangupBy: LooseInt = None
    hangupCode: LooseInt = None
    callStatus: LooseStr = ""
    hangupReason: LooseStr = ""
    inQueueTime: LooseInt = None
    leaveMsgUrl: LooseStr = ""
    orderId: LooseStr = ""
    other: LooseStr = ""
    intent: LooseStr = ""
    outQueueTime: LooseInt = None
    queueDuration: LooseInt = None
    recordUrl: LooseStr = ""
    ringDuration: LooseInt = None
    ringTime: LooseInt = None
    startTime: LooseInt = None
    taskId: LooseStr = ""
    totalCustomerPrice: LooseFloat = None


def queue_duration_ms(value: int | None, in_queue_ms: int | None, out_queue_ms: int | None) -> int | None:
    """``queueDuration`` is documented in seconds but sent in milliseconds too; the
    queue times, when both are there, tell which unit this value is in."""
    if value is None:
        return None
    if in_queue_ms and out_queue_ms and out_queue_ms >= in_queue_ms:
        measured = out_queue_ms - in_queue_ms
        return value if abs(value - measured) < abs(value * 1000 - measured) else value * 1000
    return value * 1000


# direction: 0 in, 1 out, 2 AICC (NXCLOUD's AI calling out).
_DIRECTION: dict[int, outcomes.Direction] = {0: "inbound", 1: "outbound", 2: "outbound"}
# hangupBy: 0 agent, 1 user (the customer), 2 unknown.
_PARTY: dict[int, outcomes.Party] = {0: "agent", 1: "customer"}

_CDR_TIMES = ("startTime", "answerTime", "endTime", "ringTime", "inQueueTime", "outQueueTime")
# Epoch times, where NXCLOUD sends 0 for "not set" (the merge of copies reads them so).
ZERO_IS_UNSET = frozenset(_CDR_TIMES)


def map_cc_cdr(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    """A call-centre CDR record (page API, and the NXCC call-log callback)."""
    norm = Normaliser()
    model = norm.validate(CcCdrRecord, payload)
    call_id = require_id(model.callId, "callId")
    fields = model.model_dump()
    times = {name: norm.add_time(fields, name, partial(from_epoch, getattr(model, name))) for name in _CDR_TIMES}
    add_name(fields, "direction", enums.CDR_DIRECTION, model.direction)
    add_name(fields, "hangupBy", enums.CDR_HANGUP_BY, model.hangupBy)
    queue_ms = queue_duration_ms(model.queueDuration, model.inQueueTime, model.outQueueTime)
    queue_ms = norm.number(("queueDuration",), queue_ms)
    if queue_ms is not None:
        fields["queueDurationMs"] = queue_ms
    direction = _DIRECTION.get(model.direction) if model.direction is not None else None
    duration = norm.number(("callDuration",), model.callDuration)
    if model.answered or times["answerTime"] is not None:
        outcome: outcomes.Outcome = "answered"
    else:
        ended = model.answered is False or times["endTime"] is not None
        outcome = outcomes.unanswered(outcomes.from_text(model.callStatus, model.hangupReason), ended=ended)
    party = _PARTY.get(model.hangupBy) if model.hangupBy is not None else None
    summary = call_summary(
        outcome=outcome,
        start=times["startTime"],
        ring=times["ringTime"],
        answer=times["answerTime"],
        end=times["endTime"],
        duration_sec=duration,
        recording_url=model.recordUrl,
        hangup_by=outcomes.hangup_by_party(party, direction),
        hangup_cause=model.hangupReason,
        direction=direction,
    )
    return norm.record(
        "cc_cdr",
        payload,
        raw,
        summary,
        nxcloud_id=call_id,
        start=times["startTime"],
        caller=normalise_number(model.caller),
        callee=normalise_number(model.callee),
        fields=fields,
        unknown_fields=unknown_fields(model),
    )
