"""The layer's DynamoDB (de)serialiser, checked against boto3's on any value an item can hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st
from nxcloud_cdr.dynamodb_types import (
    deserialise,
    deserialise_value,
    item_size,
    serialise,
    serialise_value,
    write_units,
)

numbers = st.one_of(
    st.integers(min_value=-(10**37), max_value=10**37),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda value: not value or -120 < value.adjusted() < 120
    ),
)
leaves = st.one_of(st.none(), st.booleans(), st.text(), st.binary(), numbers)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)),
    max_leaves=20,
)


def boto3_form(value: Any) -> Any:
    try:
        return ("ok", TypeSerializer().serialize(value))
    except Exception as exc:
        return ("refused", type(exc).__name__)


def ours(value: Any) -> Any:
    try:
        return ("ok", serialise_value(value))
    except Exception as exc:
        return ("refused", type(exc).__name__)


@settings(max_examples=400, deadline=None)
@given(values)
def test_serialises_as_boto3_and_reads_back_what_it_wrote(value):
    mine, theirs = ours(value), boto3_form(value)
    if theirs[0] == "ok":
        assert mine == theirs
        # boto3 reads binary values back as its Binary class, which equals our bytes.
        assert deserialise_value(mine[1]) == TypeDeserializer().deserialize(theirs[1])
    else:
        assert mine[0] == "refused"


def test_refuses_what_dynamodb_cannot_hold():
    for value in (1.5, Decimal("NaN"), Decimal("Infinity"), 10**40, object()):
        with pytest.raises((TypeError, ArithmeticError)):
            serialise_value(value)


def test_item_round_trip():
    item = {"pk": "ID#1", "n": Decimal("1.50"), "b": b"\x00", "l": [1, "x", None], "m": {"k": True}}
    assert serialise(item)["n"] == {"N": "1.50"}
    assert deserialise(serialise(item)) == item | {"l": [Decimal(1), "x", None]}
    assert deserialise({"s": {"SS": ["a"]}, "ns": {"NS": ["1"]}}) == {"s": {"a"}, "ns": {Decimal(1)}}


def reference_size(value: Any) -> int:
    """DynamoDB's documented rule, computed the slow way."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    digits = len(Decimal(value).normalize().as_tuple().digits)
    return min(21, (digits + 1) // 2 + 1)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1), st.text()))
def test_item_size_follows_dynamodb_rule(value):
    assert item_size({"a": value}) == 1 + reference_size(value)
    assert write_units(1024) == 1 and write_units(1025) == 2 and write_units(0) == 1
