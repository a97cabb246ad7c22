"""The normalised call record every source is mapped to, and what identifies a copy.

A record is what the store writes: NXCLOUD's id, the few fields every lookup needs
(start time, numbers, binding), every field of the payload normalised, the names of
fields the models do not know, and the body exactly as received.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import nxjson


@dataclass(frozen=True)
class CallRecord:
    kind: str
    nxcloud_id: str
    raw: str
    content_hash: str
    completeness: int
    start: datetime | None = None
    caller: str | None = None
    callee: str | None = None
    did: str | None = None
    # The Y number of a 2024-format PNS call (AXYB bindings): the number the callee sees.
    did_y: str | None = None
    bind_id: str | None = None
    customer_bind_id: str | None = None
    duration_sec: int | None = None
    # How the call ended, in the words every kind shares (:mod:`.outcomes`).
    outcome: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    unknown_fields: tuple[str, ...] = ()
    # The latest of NXCLOUD's own times in the record (epoch ms, 0 when none): a copy
    # that knows of a later event ranks above an equally complete one.
    latest_ms: int = 0
    # Fields that could not be normalised (left out of the normalised forms; ``raw``
    # keeps their exact values), as "<field>: <why>".
    problems: tuple[str, ...] = ()
    # (name, link) of each recording the body links to (:mod:`.recording_links`).
    recordings: tuple[tuple[str, str], ...] = ()
    # Where (keys and list positions) the values the model could not read are.
    unreadable: tuple[tuple[str | int, ...], ...] = ()
    # The body's format, for kinds NXCLOUD sends in more than one ("2024" for the 2024
    # PNS call result); copies of different formats are not merged into one body.
    format: str = ""

    @property
    def rank(self) -> str:
        """Which of two copies of this record is shown: the higher rank. A total order
        on copies (the content hash breaks every tie), so the stored copy depends on
        the set of copies received, never on their order. Fixed width: it compares as
        a string in a DynamoDB condition."""
        return copy_rank(self.completeness, self.latest_ms, self.content_hash)


# The lookup attributes of an item and the record's field each comes from.
LOOKUP_FIELDS = {
    "callerNumber": "caller",
    "calleeNumber": "callee",
    "didNumber": "did",
    "didYNumber": "did_y",
    "bindId": "bind_id",
    "customerBindId": "customer_bind_id",
}


def lookups(record: CallRecord) -> dict[str, str | None]:
    """The record's lookup values under their item names."""
    return {name: getattr(record, field) for name, field in LOOKUP_FIELDS.items()}


def copy_rank(completeness: int, latest_ms: int, content_hash: str) -> str:
    return f"{min(completeness, 10**9 - 1):09d}.{min(max(latest_ms, 0), 10**16 - 1):016d}.{content_hash}"


def content_hash(payload: Any) -> str:
    """Hash of the payload's content: key order and white space do not change it, the
    text of every number does (``0.30000000000000001`` is not ``0.3``)."""
    canonical = nxjson.dumps(payload, sort_keys=True)
    # surrogatepass: JSON may carry lone surrogate escapes ("\\ud800"); they still hash.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _empty(value: Any) -> bool:
    return value is None or value == "" or value is False or (isinstance(value, int | float | Decimal) and value == 0)


def completeness(payload: Any) -> int:
    """How many leaf values carry information (not null, "", 0, [] or {}).

    Decides which of two different copies of one record is kept: a copy that gained a
    recording URL or an answer time counts more than the copy it corrects. Iterative:
    a body may nest as deep as the JSON parser allows.
    """
    total = 0
    pending = [payload]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif not _empty(value):
            total += 1
    return total
