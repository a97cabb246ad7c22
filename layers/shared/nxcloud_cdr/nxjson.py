"""NXCLOUD's JSON, read so that two copies that differ in their text never read alike.

One reader for pushes and for the CDR page API. Python's ``json`` alone loses what
tells copies apart: ``0.30000000000000001`` and ``0.3`` both become the float 0.3,
``1e400`` and ``1e999`` both infinity, an integer of more than 4,300 digits is an error,
and a field named twice keeps only its last value. Here a number a float cannot hold
exactly is read as a :class:`~decimal.Decimal` of its text, and a field named twice is
refused (pushes) or kept with every value (the sync's rows, quarantined one by one).
Everything ordinary reads exactly as ``json.loads`` reads it, so content hashes of
ordinary copies do not change.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

# Python refuses int() of longer texts (CVE-2020-10735); longer integers stay Decimals.
_INT_DIGITS = 4000


class DuplicateKeyError(ValueError):
    """A JSON object names one field twice: which value NXCLOUD meant is unknowable."""


class DuplicateKeys(dict[str, Any]):
    """An object that named a field twice: the last value of each name (as ``json``
    reads it) and, in ``pairs``, every name and value in the order sent."""

    pairs: list[tuple[str, Any]]


def _number(text: str) -> float | Decimal:
    value = float(text)
    if repr(value) == text:  # the common case ("4.2"), without building Decimals
        return value
    try:
        exact = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the JSON scanner only gives numbers
        return value
    # A float that holds the number exactly (4.2 for "4.20" too) reads as json reads it.
    if math.isfinite(value) and Decimal(repr(value)) == exact:
        return value
    return exact


def _integer(text: str) -> int | Decimal:
    return int(text) if len(text.lstrip("-")) <= _INT_DIGITS else Decimal(text)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str, *, duplicates: Literal["refuse", "keep"] = "refuse", constants: bool = False) -> Any:
    """Parse NXCLOUD's JSON exactly. ``duplicates="refuse"`` raises
    :class:`DuplicateKeyError` on a field named twice; ``"keep"`` reads such an object as
    :class:`DuplicateKeys`. ``NaN``/``Infinity`` are refused unless ``constants``."""

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) == len(pairs):
            return result
        if duplicates == "refuse":
            names = [name for name, _ in pairs]
            twice = next(name for name in names if names.count(name) > 1)
            raise DuplicateKeyError(f"the field {twice[:100]!r} appears more than once in one object")
        marked = DuplicateKeys(result)
        marked.pairs = pairs
        return marked

    return json.loads(
        text,
        parse_float=_number,
        parse_int=_integer,
        parse_constant=None if constants else _no_constants,
        object_pairs_hook=pairs_hook,
    )


def duplicated_name(value: Any) -> str | None:
    """The first field named twice in any object of ``value`` (read with ``"keep"``)."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, DuplicateKeys):
            names = [name for name, _ in current.pairs]
            return next(name for name in names if names.count(name) > 1)
        if isinstance(current, dict):
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return None


def _exact(value: Any) -> bool:
    """Whether ``value`` holds a Decimal or an object that named a field twice (which
    ``json.dumps`` cannot write as sent)."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, Decimal | DuplicateKeys):
            return True
        if isinstance(current, dict):
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return False


def dumps(value: Any, *, sort_keys: bool = False, ensure_ascii: bool = False) -> str:
    """Compact JSON text of a value :func:`loads` read: numbers as exact as they were
    sent, every value of a field named twice. Ordinary values are written by ``json``
    itself (so their text, and hashes of it, are what ``json.dumps`` gives)."""
    if not _exact(value):
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    return _dumps_exact(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii)


def _dumps_exact(value: Any, *, sort_keys: bool, ensure_ascii: bool) -> str:
    """The same text, written without recursion: a row may nest as deep as the parser
    allows, and Python's own recursion would not follow it."""
    out: list[str] = []
    stack: list[tuple[bool, Any]] = [(False, value)]  # (is text, item)
    while stack:
        is_text, item = stack.pop()
        if is_text:
            out.append(item)
        elif isinstance(item, dict):
            pairs = item.pairs if isinstance(item, DuplicateKeys) else list(item.items())
            if sort_keys:  # stable: values of a field named twice keep their order
                pairs = sorted(pairs, key=lambda pair: pair[0])
            stack.append((True, "}"))
            for index in range(len(pairs) - 1, -1, -1):
                name, inner = pairs[index]
                stack.append((False, inner))
                stack.append((True, ("," if index else "") + json.dumps(name, ensure_ascii=ensure_ascii) + ":"))
            stack.append((True, "{"))
        elif isinstance(item, list):
            stack.append((True, "]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append((False, item[index]))
                if index:
                    stack.append((True, ","))
            stack.append((True, "["))
        elif isinstance(item, Decimal):
            out.append(str(item))
        else:
            out.append(json.dumps(item, ensure_ascii=ensure_ascii))
    return "".join(out)
