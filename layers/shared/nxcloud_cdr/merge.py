"""How the copies of one call become one record: field by field, the fullest value of
the whole set.

NXCLOUD can report a call more than once, and not identically: its call-centre
call-log callback arrives in real time, before the recording link exists; the CDR page
API read by the sync minutes later has it; a push is retried after a correction. The
item shows the **merge of every distinct copy received**, a pure function of the *set*
of copies (never of their order), that holds at least as much as any one of them:

- copies are taken in rank order (:attr:`.records.CallRecord.rank`: most complete
  first, then the latest NXCLOUD time, then the content hash: a total order);
- each field takes the fullest value any copy has for it (:func:`fullness`: a value
  over ``null``, ``""`` or a number that is not one, such as ``NaN``; ``0`` and
  ``false`` are values, as NXCLOUD's codes use them: ``direction`` 0 is inbound,
  except in the fields its kind names, its times, where 0 means "not set"), the
  better-ranked copy's when two copies both set one;
- objects are merged the same way, field by field, down to :data:`MAX_DEPTH` levels
  (deeper, an object is taken whole like any value); lists are taken whole, the fullest
  (a list's entries have no identity to merge by);
- fields keep the order of the best copy, then the others' new fields in rank order.

Every copy's exact text is kept beside the merge (a version item each, see
:mod:`.write_rule`), so nothing NXCLOUD sent is lost by choosing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

# Objects nested deeper than this are taken whole: no NXCLOUD payload nests near it,
# and a body that does must not exhaust the stack.
MAX_DEPTH = 32


def _is_value(value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Decimal):
        return value.is_finite()
    return True


def fullness(value: Any, zero_is_unset: frozenset[str] = frozenset()) -> int:
    """How many values a value holds (leaves that are not ``null``, ``""``, ``NaN`` or
    infinite, nor an unset time under a name of ``zero_is_unset``, at any depth, lists
    included). Iterative: a body may nest as deep as the JSON parser allows."""
    total = 0
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        name, current = pending.pop()
        if isinstance(current, dict):
            pending.extend(current.items())
        elif isinstance(current, list):
            pending.extend((name, inner) for inner in current)
        elif _is_value(current) and not (name in zero_is_unset and _unset_time(current)):
            total += 1
    return total


def _unset_time(value: Any) -> bool:
    """An epoch time NXCLOUD sends for "not set": 0 (or less), as a number or as text,
    read as the mapping reads it."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except ArithmeticError:
            return False
    return isinstance(value, int | float | Decimal) and value <= 0


def merged(payloads: Sequence[dict[str, Any]], zero_is_unset: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The merge of ``payloads``, given best (highest rank) first. ``zero_is_unset``:
    the names of fields (at any depth) whose 0 means "not set"."""
    if len(payloads) == 1:
        return payloads[0]
    return _objects(list(payloads), 1, zero_is_unset)


def _objects(objects: list[dict[str, Any]], depth: int, zero_is_unset: frozenset[str]) -> dict[str, Any]:
    names: dict[str, None] = {}
    for obj in objects:
        names.update(dict.fromkeys(obj))
    merged_object = {}
    for name in names:
        values = [obj[name] for obj in objects if name in obj]
        if name in zero_is_unset:
            # A 0 there is no value: any other, unless every copy says 0.
            values = [value for value in values if not _unset_time(value)] or values
        merged_object[name] = _value(values, depth, zero_is_unset)
    return merged_object


def _value(values: list[Any], depth: int, zero_is_unset: frozenset[str]) -> Any:
    """The fullest of one field's values (best copy's first): objects merged, the
    first of the fullest otherwise."""
    objects = [value for value in values if isinstance(value, dict)]
    candidates = values
    if len(objects) > 1 and depth < MAX_DEPTH:
        combined = _objects(objects, depth + 1, zero_is_unset)
        first = next(index for index, value in enumerate(values) if isinstance(value, dict))
        candidates = [
            combined if index == first else value
            for index, value in enumerate(values)
            if index == first or not isinstance(value, dict)
        ]
    best, best_score = candidates[0], fullness(candidates[0], zero_is_unset)
    for value in candidates[1:]:
        score = fullness(value, zero_is_unset)
        if score > best_score:
            best, best_score = value, score
    return best
