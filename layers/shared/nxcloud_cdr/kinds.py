"""The kinds of record this product stores, and the push types it receives: one Lambda
function each, one stored kind each.

A kind's model and mapper live in its own module of :mod:`.payloads`, imported the
first time the kind maps a payload: a push function builds only its own kind's model.
A new push type is a module there and an entry here; the receiver, the store and the
handlers do not change.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .records import CallRecord

Mapper = Callable[[dict[str, Any], str, tzinfo], "CallRecord"]


@dataclass(frozen=True)
class RecordKind:
    name: str

    @property
    def mapper(self) -> Mapper:
        module = importlib.import_module(f"{__package__}.payloads.{self.name}")
        return cast("Mapper", getattr(module, f"map_{self.name}"))

    def map(self, payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
        return self.mapper(payload, raw, zone)

    @property
    def zero_is_unset(self) -> frozenset[str]:
        """Fields of this kind whose 0 means "not set" (its epoch times), for the merge."""
        module = importlib.import_module(f"{__package__}.payloads.{self.name}")
        return cast("frozenset[str]", getattr(module, "ZERO_IS_UNSET", frozenset()))


@dataclass(frozen=True)
class PushKind(RecordKind):
    # The route of its function in template.yaml (a test keeps the two in step); the
    # operator tool replays quarantined bodies to it.
    path: str = ""
    # The function in template.yaml that receives it.
    function: str = ""
    # A header NXCLOUD sends the push token in too, checked as well as the path's.
    token_header: str = ""


PNS_CALL_RESULT = PushKind("pns_call_result", "/v1/pns/call-result/{token}", "PnsCallResultFunction")
PNS_BINDING_NOT_EXIST = PushKind(
    "pns_binding_not_exist", "/v1/pns/binding-not-exist/{token}", "PnsBindingNotExistFunction"
)
CC_REPORT = PushKind("cc_report", "/v1/cc/report/{token}", "CcReportFunction")
# Call-centre CDR records: NXCLOUD's call-log callback pushes them (with the token in
# a `token` header, as its console sends it), and the sync reads them from the CDR page
# API; both copies of a call merge into one item.
CC_CDR = PushKind("cc_cdr", "/v1/cc/call-log/{token}", "CcCallLogFunction", token_header="token")  # noqa: S106

PUSH_KINDS: dict[str, PushKind] = {
    kind.name: kind for kind in (PNS_CALL_RESULT, PNS_BINDING_NOT_EXIST, CC_REPORT, CC_CDR)
}
RECORD_KINDS: dict[str, RecordKind] = dict(PUSH_KINDS)


def normalised(item: dict[str, Any], zone: tzinfo) -> tuple[dict[str, Any], list[str]]:
    """The normalised fields of a stored record and the names of fields the model does
    not know, rebuilt from its ``raw`` by its kind's mapper (the item stores neither;
    items from before the slim item stored both, and those are returned as stored).
    Times NXCLOUD sends without a zone are read in ``zone``, the deployment's."""
    if "fields" in item:
        return dict(item["fields"]), list(item.get("unknownFields", []))
    kind = RECORD_KINDS.get(str(item.get("kind") or item.get("sk")))
    if kind is None or not item.get("raw"):
        return {}, []
    from . import nxjson  # noqa: PLC0415 - read paths only (the operator tool)
    from .storable import storable  # noqa: PLC0415

    raw = str(item["raw"])
    try:
        # As leniently as the record was read on arrival: a sync row may hold NaN.
        record = kind.map(nxjson.loads(raw, duplicates="keep", constants=True), raw, zone)
    except Exception as exc:  # a record stored by an older mapping that this one refuses
        return {"_notReadable": f"{type(exc).__name__}: {str(exc)[:200]}"}, []
    fields = dict(record.fields)
    if "callSummary" in item:  # an item that shows a join: the call by meaning, across every copy
        fields["callSummary"] = item["callSummary"]
    # In the form the item once stored them: text that prints (lone surrogates
    # escaped), numbers DynamoDB and JSON can hold.
    return storable(fields, "fields", []), list(record.unknown_fields)
