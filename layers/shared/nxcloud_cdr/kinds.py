"""The kinds of record this product stores, and the push types it receives: one Lambda
function each, one stored kind each.

A kind's model and mapper live in its own module of :mod:`.payloads`, imported the
first time the kind maps a payload: a push function builds only its own kind's model.
A new push type (the call-centre call-log callback, the 2024 PNS format) is a module
there and an entry here; the receiver, the store and the handlers do not change.
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


@dataclass(frozen=True)
class PushKind(RecordKind):
    # The route of its function in template.yaml (a test keeps the two in step); the
    # operator tool replays quarantined bodies to it.
    path: str = ""


PNS_CALL_RESULT = PushKind("pns_call_result", "/v1/pns/call-result/{token}")
PNS_BINDING_NOT_EXIST = PushKind("pns_binding_not_exist", "/v1/pns/binding-not-exist/{token}")
CC_REPORT = PushKind("cc_report", "/v1/cc/report/{token}")
# Read by the sync from NXCLOUD's CDR page API; no push of its own yet.
CC_CDR = RecordKind("cc_cdr")

PUSH_KINDS: dict[str, PushKind] = {kind.name: kind for kind in (PNS_CALL_RESULT, PNS_BINDING_NOT_EXIST, CC_REPORT)}
RECORD_KINDS: dict[str, RecordKind] = {**PUSH_KINDS, CC_CDR.name: CC_CDR}
