"""PNS binding-not-exist push (``seeds/pns-binding-not-exist-push.md``)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from .. import enums
from ..mapping import Normaliser, add_name, call_summary, require_id, unknown_fields
from ..models import IdStr, LooseInt, LooseStr, NxModel
from ..phones import normalise_number
from ..records import CallRecord
from ..times import from_local_string


class BindingRequestParams(NxModel):
    caller: LooseStr = ""
    did: LooseStr = ""


class BindingEventData(NxModel):
    action: LooseStr = ""
    requestParams: BindingRequestParams = BindingRequestParams()
    occurrenceTime: LooseStr = ""


class PnsBindingNotExist(NxModel):
    """PNS binding-not-exist push (``seeds/pns-binding-not-exist-push.md``)."""

    requestId: IdStr = ""
    code: LooseInt = None
    msg: LooseStr = ""
    data: BindingEventData = BindingEventData()


def map_pns_binding_not_exist(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    norm = Normaliser()
    model = norm.validate(PnsBindingNotExist, payload)
    request_id = require_id(model.requestId, "requestId")
    fields = model.model_dump()
    occurred = norm.add_time(
        fields["data"], "occurrenceTime", lambda: from_local_string(model.data.occurrenceTime, zone), ("data",)
    )
    add_name(fields, "code", enums.PNS_ERROR_CODE, model.code)
    # A call to an X number that no binding holds: PNS refused it before it rang.
    summary = call_summary(outcome="no_binding", start=occurred, hangup_by="system")
    return norm.record(
        "pns_binding_not_exist",
        payload,
        raw,
        summary,
        nxcloud_id=request_id,
        start=occurred,
        caller=normalise_number(model.data.requestParams.caller),
        did=normalise_number(model.data.requestParams.did),
        fields=fields,
        unknown_fields=unknown_fields(model),
    )
