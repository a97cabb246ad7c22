"""PNS call result push, in both formats NXCLOUD sends to the same URL: the flat one
(``seeds/pns-call-result-push.md``) and the 2024 one with a ``legList``
(``nxcloud-notes.md``, section 3), told apart per body and mapped to the same
normalised fields."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from functools import partial
from typing import Any

from pydantic import Field

from .. import enums, outcomes
from ..mapping import Normaliser, add_name, call_summary, require_id, unknown_fields
from ..models import IdStr, LooseInt, LooseStr, NxModel
from ..phones import normalise_number
from ..records import CallRecord
from ..times import from_epoch


class PnsCallResult(NxModel):
    """PNS call result push, flat format (``seeds/pns-call-result-push.md``)."""

    callId: IdStr = ""
    id: LooseInt = None
    businessId: LooseStr = ""
    customerBindId: LooseStr = ""
    bindId: LooseStr = ""
    did: LooseStr = ""
    caller: LooseStr = ""
    callee: LooseStr = ""
    callStatus: LooseInt = None
    callStatusMsg: LooseStr = ""
    duration: LooseInt = None
    startAt: LooseInt = None
    answerAt: LooseInt = None
    hangupAt: LooseInt = None
    hangupCause: LooseStr = ""
    hangupCode: LooseInt = None
    hangup: LooseInt = None
    recordFile: LooseStr = ""
    # Jan-2024 revision of the flat format.
    extensionCaller: LooseStr = ""
    extensionCallee: LooseStr = ""


def pns_outcome(*, answered: bool, q850: outcomes.Outcome | None, call_status: int | None) -> outcomes.Outcome:
    """A PNS call's outcome: answered when it has an answer time (or talk time); else
    what its Q.850 cause says, else ``failed`` for an abnormal end (callStatus 2)."""
    if answered:
        return "answered"
    return outcomes.unanswered(q850, "failed" if call_status == 2 else None, ended=call_status in (1, 2))


_PNS_HANGUP_BY: dict[int, outcomes.HangupBy] = {0: "caller", 1: "callee"}


def pns_hangup_by(value: int | None) -> outcomes.HangupBy:
    """PNS's hang-up party (0 caller, 1 callee)."""
    return "unknown" if value is None else _PNS_HANGUP_BY.get(value, "unknown")


class PnsLeg(NxModel):
    """One leg of a 2024-format call (caller to X, X to callee...)."""

    callType: LooseStr = ""
    caller: LooseStr = ""
    callee: LooseStr = ""
    callStartAt: LooseInt = None
    callRingAt: LooseInt = None
    callAnswerAt: LooseInt = None
    callFinishAt: LooseInt = None
    duration: LooseInt = None
    callRecordFile: LooseStr = ""
    hangupType: LooseStr = ""
    hangupCause: LooseStr = ""
    hangupCode: LooseInt = None
    uuid: LooseStr = ""
    ringDuration: LooseInt = None
    fsCallStatus: LooseStr = ""
    fsCallStatusMsg: LooseStr = ""


class PnsCallResult2024(NxModel):
    """PNS call result push, 2024 format: the call's parties and binding at the top, its
    legs in ``legList`` (times in epoch seconds)."""

    callId: IdStr = ""
    bindId: LooseStr = ""
    customerBindId: LooseStr = ""
    caller: LooseStr = ""
    did: LooseStr = ""
    didX: LooseStr = ""
    didY: LooseStr = ""
    extensionX: LooseStr = ""
    callee: LooseStr = ""
    pnsType: LooseStr = ""
    callStatus: LooseStr = ""
    callStatusMsg: LooseStr = ""
    ext: Any = None
    legList: list[PnsLeg] = Field(default_factory=list)


# Epoch times, where NXCLOUD sends 0 for "not set" (the merge of copies reads them so).
ZERO_IS_UNSET = frozenset(
    {"startAt", "answerAt", "hangupAt", "callStartAt", "callRingAt", "callAnswerAt", "callFinishAt"}
)

# Fields only the 2024 format has: one of them tells a body's format.
_FORMAT_2024 = ("legList", "didX", "didY", "pnsType", "extensionX")
_LEG_TIMES = ("callStartAt", "callRingAt", "callAnswerAt", "callFinishAt")


def is_2024_format(payload: dict[str, Any]) -> bool:
    return any(name in payload for name in _FORMAT_2024)


def _leg_side(value: str) -> outcomes.HangupBy:
    """A leg's hangupType, read as the flat format's ``hangup`` (0 caller, 1 callee)."""
    text = value.strip().lower()
    if text in ("0", "caller"):
        return "caller"
    if text in ("1", "callee"):
        return "callee"
    return "unknown"


def _lookups(
    model: PnsCallResult | PnsCallResult2024, fields: dict[str, Any], call_id: str, start: datetime | None
) -> dict[str, Any]:
    """What both formats give a record the same way."""
    return {
        "nxcloud_id": call_id,
        "start": start,
        "caller": normalise_number(model.caller),
        "callee": normalise_number(model.callee),
        "bind_id": model.bindId.strip() or None,
        "customer_bind_id": model.customerBindId.strip() or None,
        "fields": fields,
        "unknown_fields": unknown_fields(model),
    }


def map_pns_call_result(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    """A PNS call result in either format."""
    if is_2024_format(payload):
        return map_pns_call_result_2024(payload, raw)
    return map_pns_call_result_flat(payload, raw)


def map_pns_call_result_2024(payload: dict[str, Any], raw: str) -> CallRecord:
    """The 2024 format. The call's times, talk time, recording and hang-up come from its
    legs: it starts when its first leg starts and ends when its last leg ends; it rings,
    is answered, lasts, and hangs up as the leg that reaches the callee (the leg whose
    callee is the call's, else the last); its recording is that leg's, else any leg's."""
    norm = Normaliser()
    model = norm.validate(PnsCallResult2024, payload)
    call_id = require_id(model.callId, "callId")
    fields = model.model_dump()
    leg_times: list[dict[str, datetime | None]] = []
    for number, (leg, leg_fields) in enumerate(zip(model.legList, fields["legList"], strict=True)):
        leg_times.append(
            {
                name: norm.add_time(
                    leg_fields, name, partial(from_epoch, getattr(leg, name), unit="s"), ("legList", number)
                )
                for name in _LEG_TIMES
            }
        )
        if leg.hangupCode:
            add_name(leg_fields, "hangupCode", enums.Q850_CAUSE, leg.hangupCode)
    callee = normalise_number(model.callee)
    legs = list(zip(model.legList, leg_times, strict=True))
    reaching = [pair for pair in legs if callee and normalise_number(pair[0].callee) == callee]
    positions = {id(leg): number for number, leg in enumerate(model.legList)}
    # No leg to the callee: the last leg, unless it ends at a number of the binding (the
    # caller's leg to X, which the platform answers): then the call never reached them.
    binding = {normalise_number(number) for number in (model.did, model.didX, model.didY, model.extensionX)} - {None}
    if not reaching and legs and normalise_number(legs[-1][0].callee) not in binding:
        reaching = legs[-1:]
    starts = [times["callStartAt"] for _, times in legs if times["callStartAt"] is not None]
    ends = [times["callFinishAt"] for _, times in legs if times["callFinishAt"] is not None]
    start, end = (min(starts) if starts else None), (max(ends) if ends else None)
    if reaching:
        leg, times = reaching[-1]
        ring, answer = times["callRingAt"], times["callAnswerAt"]
        duration = norm.number(("legList", positions[id(leg)], "duration"), leg.duration)
        code, cause, side = leg.hangupCode, leg.hangupCause, _leg_side(leg.hangupType)
        recording = leg.callRecordFile or next((other.callRecordFile for other, _ in legs if other.callRecordFile), "")
    else:
        ring = answer = None
        duration, code, cause, side, recording = None, None, "", "unknown", ""
    status = int(model.callStatus) if re.fullmatch(r"[0-9]{1,9}", model.callStatus.strip()) else None
    add_name(fields, "callStatus", enums.PNS_CALL_STATUS, status)
    outcome = pns_outcome(
        answered=answer is not None or bool(duration), q850=outcomes.from_q850(code, cause), call_status=status
    )
    summary = call_summary(
        outcome=outcome,
        start=start,
        ring=ring,
        answer=answer,
        end=end,
        duration_sec=duration,
        recording_url=recording,
        hangup_by=side,
        hangup_cause=cause or (enums.Q850_CAUSE.get(code, "") if code else ""),
    )
    return norm.record(
        "pns_call_result",
        payload,
        raw,
        summary,
        **_lookups(model, fields, call_id, start),
        did=normalise_number(model.did) or normalise_number(model.didX),
        did_y=normalise_number(model.didY),
        format="2024",
    )


def map_pns_call_result_flat(payload: dict[str, Any], raw: str) -> CallRecord:
    """The flat format (the seed's)."""
    norm = Normaliser()
    model = norm.validate(PnsCallResult, payload)
    call_id = require_id(model.callId, "callId")
    fields = model.model_dump()
    start = norm.add_time(fields, "startAt", lambda: from_epoch(model.startAt, unit="s"))
    answer = norm.add_time(fields, "answerAt", lambda: from_epoch(model.answerAt, unit="s"))
    end = norm.add_time(fields, "hangupAt", lambda: from_epoch(model.hangupAt, unit="s"))
    add_name(fields, "callStatus", enums.PNS_CALL_STATUS, model.callStatus)
    add_name(fields, "hangup", enums.PNS_HANGUP, model.hangup)
    if model.hangupCode:
        add_name(fields, "hangupCode", enums.Q850_CAUSE, model.hangupCode)
    duration = norm.number(("duration",), model.duration)
    outcome = pns_outcome(
        answered=answer is not None or bool(duration),
        q850=outcomes.from_q850(model.hangupCode, model.hangupCause),
        call_status=model.callStatus,
    )
    summary = call_summary(
        outcome=outcome,
        start=start,
        answer=answer,
        end=end,
        duration_sec=duration,
        recording_url=model.recordFile,
        hangup_by=pns_hangup_by(model.hangup),
        hangup_cause=model.hangupCause or fields.get("hangupCodeName", ""),
    )
    return norm.record(
        "pns_call_result",
        payload,
        raw,
        summary,
        **_lookups(model, fields, call_id, start),
        did=normalise_number(model.did),
    )
