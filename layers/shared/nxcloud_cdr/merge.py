"""How the copies of one call become one record: field by field, the fullest value of
the whole set.

NXCLOUD can report a call more than once, and not identically: its call-centre
call-log callback arrives in real time, before the recording link exists; the CDR page
API read by the sync minutes later has it; a push is retried after a correction. The
item shows the **merge of every distinct copy received**, a pure function of the *set*
of copies (never of their order), that holds at least as much as any one of them:

- copies are taken in rank order (:attr:`.records.CallRecord.rank`: most complete
  first, then the latest NXCLOUD time, then the content hash: a total order);
- each field takes the fullest value any copy has for it: the one with the most
  information (:func:`.records.completeness`: a set value over ``""``, ``0``, ``null``;
  the longer list of legs), the higher-ranked copy's on a tie, so two copies that
  disagree on a set value show the better copy's;
- objects are merged the same way, field by field; lists are taken whole (a list's
  entries have no identity to merge by);
- fields keep the order of the best copy, then the others' new fields in rank order.

Every copy's exact text is kept beside the merge (a version item each, see
:mod:`.write_rule`), so nothing NXCLOUD sent is lost by choosing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .records import completeness


def merged(payloads: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The merge of ``payloads``, given best (highest rank) first."""
    if len(payloads) == 1:
        return payloads[0]
    return _objects(list(payloads))


def _objects(objects: list[dict[str, Any]]) -> dict[str, Any]:
    names: dict[str, None] = {}
    for obj in objects:
        names.update(dict.fromkeys(obj))
    return {name: _value([obj[name] for obj in objects if name in obj]) for name in names}


def _value(values: list[Any]) -> Any:
    """The fullest of one field's values (best copy's first): objects merged, the
    first of the fullest otherwise."""
    objects = [value for value in values if isinstance(value, dict)]
    candidates = values
    if len(objects) > 1:
        combined = _objects(objects)
        first = next(index for index, value in enumerate(values) if isinstance(value, dict))
        candidates = [combined if index == first else value for index, value in enumerate(values)]
        candidates = [value for value in candidates if value is combined or not isinstance(value, dict)]
    best = candidates[0]
    best_score = completeness(best)
    for value in candidates[1:]:
        score = completeness(value)
        if score > best_score:
            best, best_score = value, score
    return best
