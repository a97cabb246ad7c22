"""What DynamoDB can hold, and how a value it would refuse is made storable.

Pure functions, applied to every item before it is written (pushes, the sync, replays),
so that no body NXCLOUD sends meets a ``ValidationException`` that a retry cannot fix.
Each change is *lossless for the record*: the item's ``raw`` keeps the exact text, and
each change is named in the item's ``problems`` list.

DynamoDB refuses (and what this module does instead):

- empty attribute names (a map key ``""``): the entry is left out of ``fields``;
- numbers beyond 38 significant digits or outside 1E-130..9.9E+125, and NaN/Infinity
  (JSON's ``1e400`` parses to infinity): kept as their text;
- strings that are not valid UTF-8 (JSON's lone surrogate escapes, ``"\\ud800"``):
  the lone surrogates are written as ``\\udXXX`` escapes;
- nesting deeper than 32 levels: the deeper part is kept as its JSON text;
- key attributes over their size limits: an index key is left out (the record is
  stored, not findable by that value); an id that cannot be a key refuses the record;
- items over 400 KB: ``fields`` is left out (``raw`` has it all); beyond that the record
  cannot be stored and its body goes to quarantine, which compresses.
"""

from __future__ import annotations

import json
from decimal import Decimal, DecimalException
from typing import Any

from .dynamodb_types import DYNAMODB_CONTEXT

# Partition keys (and so every index's partition key) hold at most 2048 bytes, sort
# keys 1024. The id is in the table's partition key and in every index's sort key
# (``<iso time>#<kind>#<id>``, 25 + kind + 1 bytes before it).
MAX_ID_BYTES = 900
MAX_INDEX_KEY_BYTES = 2048
# DynamoDB nests at most 32 levels, counting the item's own map; a stored ``fields``
# map sits one level below the item, so its values may go this deep.
MAX_DEPTH = 28
# 400 KB per item, names included; the estimate below is conservative.
MAX_ITEM_BYTES = 380_000


class UnstorableError(ValueError):
    """The record cannot be stored as an item (its body goes to quarantine)."""


def utf8_bytes(text: str) -> int | None:
    """Size of ``text`` in UTF-8, or ``None`` when it cannot be encoded (lone surrogates)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def number_ok(value: int | float | Decimal) -> bool:
    """Whether DynamoDB (in its decimal context) takes this number as it is."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int) and value.bit_length() > 128:  # over 38 digits, and cheap to tell
        return False
    try:
        decimal = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
        if not decimal.is_finite():
            return False
        # boto3's context allows exponents DynamoDB refuses (1E+126): check the documented range too.
        if decimal and not -130 <= decimal.adjusted() <= 125:
            return False
        DYNAMODB_CONTEXT.create_decimal(decimal)
    except (DecimalException, ValueError, OverflowError):
        return False
    return True


def _text(value: str, path: str, problems: list[str]) -> str:
    if value.isascii() or utf8_bytes(value) is not None:
        return value
    problems.append(f"{path}: text with invalid UTF-8 (lone surrogates) kept escaped")
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        # Python refuses str() of ints over 4300 digits; hexadecimal has no such limit.
        try:
            return str(value)
        except ValueError:
            return hex(value)
    return repr(value) if isinstance(value, float) else str(value)


def storable(value: Any, path: str, problems: list[str], depth: int = 1) -> Any:
    """``value`` as DynamoDB will take it (floats become Decimals), changes noted in
    ``problems``. ``depth`` is the nesting level of ``value`` inside the item."""
    if value is None or isinstance(value, bool | bytes | bytearray):
        return value
    if isinstance(value, str):
        return _text(value, path, problems)
    if isinstance(value, int | float | Decimal):
        if number_ok(value):
            return Decimal(repr(value)) if isinstance(value, float) else value
        problems.append(f"{path}: number out of DynamoDB's range or precision kept as text")
        return _number_text(value)
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            problems.append(f"{path}: nested deeper than DynamoDB allows, kept as JSON text")
            return _text(_json_text(value), path, [])
        if isinstance(value, dict):
            result: dict[str, Any] = {}
            for key, inner in value.items():
                name = str(key)
                if name == "":
                    problems.append(f"{path}: a field with an empty name left out (it is in raw)")
                    continue
                name = _text(name, f"{path}.{name!r}", problems)
                result[name] = storable(inner, f"{path}.{name}", problems, depth + 1)
            return result
        return [storable(inner, f"{path}[{index}]", problems, depth + 1) for index, inner in enumerate(value)]
    problems.append(f"{path}: a {type(value).__name__} value kept as text")
    return _text(str(value), path, [])


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return repr(value)
