"""DynamoDB's attribute-value format, without importing boto3.

``boto3.dynamodb.types`` imports the whole of boto3 (and s3transfer with it): about
50 ms of every cold start, for two small functions. These follow boto3's
``TypeSerializer``/``TypeDeserializer`` for the types an item of this product holds
(numbers in DynamoDB's own decimal context, floats refused as boto3 refuses them);
binary values come back as ``bytes``, whether given as bytes (an SDK's answer) or as
base64 text (a stream record in a Lambda event, which is JSON).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# DynamoDB's numbers: 38 significant digits; boto3 uses the same context.
DYNAMODB_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def _number(value: int | Decimal) -> str:
    text = str(DYNAMODB_CONTEXT.create_decimal(value))
    if text in ("Infinity", "-Infinity", "NaN", "-NaN", "sNaN"):
        raise TypeError(f"DynamoDB holds no {text}")
    return text


def serialise_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": _number(value)}
    if isinstance(value, float):
        raise TypeError("DynamoDB numbers are written from Decimal, not float")
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, list | tuple):
        return {"L": [serialise_value(inner) for inner in value]}
    if isinstance(value, Mapping):
        return {"M": {str(name): serialise_value(inner) for name, inner in value.items()}}
    raise TypeError(f"no DynamoDB type for {type(value).__name__}")


def _binary(value: Any) -> bytes:
    return base64.b64decode(value, validate=True) if isinstance(value, str) else bytes(value)


def deserialise_value(value: Mapping[str, Any]) -> Any:
    ((tag, inner),) = value.items()
    if tag in {"S", "BOOL"}:
        return inner
    if tag == "N":
        return DYNAMODB_CONTEXT.create_decimal(inner)
    if tag == "NULL":
        return None
    if tag == "B":
        return _binary(inner)
    if tag == "L":
        return [deserialise_value(element) for element in inner]
    if tag == "M":
        return {name: deserialise_value(element) for name, element in inner.items()}
    if tag == "SS":
        return set(inner)
    if tag == "NS":
        return {DYNAMODB_CONTEXT.create_decimal(element) for element in inner}
    if tag == "BS":
        return {_binary(element) for element in inner}
    raise TypeError(f"unknown DynamoDB type {tag}")


def serialise(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item (name -> Python value) in DynamoDB's attribute-value format."""
    return {name: serialise_value(value) for name, value in item.items()}


def deserialise(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: deserialise_value(value) for name, value in item.items()}


def _value_size(value: Any) -> int:
    # Runs on every push: the common cases (ASCII text, small whole numbers) first.
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int) and -(10**15) < value < 10**15:
        digits = len(str(abs(value)).rstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if isinstance(value, int | Decimal):
        digits = len(DYNAMODB_CONTEXT.create_decimal(value).normalize().as_tuple().digits)
        return min(21, (digits + 1) // 2 + 1)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(name).encode("utf-8")) + _value_size(inner) for name, inner in value.items())
    if isinstance(value, list | tuple | set):
        return 3 + sum(1 + _value_size(inner) for inner in value)
    raise TypeError(f"no DynamoDB type for {type(value).__name__}")


def item_size(item: Mapping[str, Any]) -> int:
    """The item's size as DynamoDB bills it: names and values, by its documented rules
    (a number is 1 byte per two significant digits plus 1)."""
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    """Write units of writing an item of ``size`` bytes (one per KB started)."""
    return max(1, -(-size // 1024))
