"""PNS call result push, flat format (``seeds/pns-call-result-push.md``)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from .. import enums
from ..mapping import Normaliser, add_name, require_id, unknown_fields
from ..models import LooseInt, LooseStr, NxModel
from ..phones import normalise_number
from ..records import CallRecord
from ..times import from_epoch


class PnsCallResult(NxModel):
    """PNS call result push, flat format (``seeds/pns-call-result-push.md``)."""

    callId: LooseStr = ""
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


def map_pns_call_result(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    norm = Normaliser()
    model = norm.validate(PnsCallResult, payload)
    call_id = require_id(model.callId, "callId")
    fields = model.model_dump()
    start = norm.add_time(fields, "startAt", lambda: from_epoch(model.startAt, unit="s"))
    norm.add_time(fields, "answerAt", lambda: from_epoch(model.answerAt, unit="s"))
    norm.add_time(fields, "hangupAt", lambda: from_epoch(model.hangupAt, unit="s"))
    add_name(fields, "callStatus", enums.PNS_CALL_STATUS, model.callStatus)
    add_name(fields, "hangup", enums.PNS_HANGUP, model.hangup)
    if model.hangupCode:
        add_name(fields, "hangupCode", enums.Q850_CAUSE, model.hangupCode)
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
        unknown_fields=unknown_fields(model),
    )
