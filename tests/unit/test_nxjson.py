"""NXCLOUD's JSON read exactly: copies that differ in their text never read alike."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest
from nxcloud_cdr import nxjson
from nxcloud_cdr.records import completeness, content_hash


def test_ordinary_json_reads_as_json_reads_it_so_hashes_do_not_change():
    text = '{"callId": "1", "duration": 6, "mos": 4.2, "cost": 0.035, "ok": true, "x": null, "l": [1.0, -0, 1e5]}'
    value = nxjson.loads(text)

    assert value == json.loads(text)
    assert all(type(a) is type(b) for a, b in zip(value["l"], json.loads(text)["l"], strict=True))
    plain = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert content_hash(value) == hashlib.sha256(plain.encode()).hexdigest()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("0.30000000000000001", "0.3"),
        ("1e400", "1e999"),
        ("1e-400", "0"),
        ("9" * 5000, "9" * 5001),
    ],
)
def test_numbers_a_float_cannot_hold_keep_their_value(one, other):
    first, second = nxjson.loads(f'{{"n":{one}}}'), nxjson.loads(f'{{"n":{other}}}')

    assert content_hash(first) != content_hash(second)
    assert Decimal(nxjson.dumps(first)[5:-1]) == Decimal(one)


def test_integers_beyond_pythons_digit_limit_are_read():
    value = nxjson.loads('{"n": ' + "7" * 6000 + "}")

    assert value["n"] == Decimal("7" * 6000)
    assert nxjson.dumps(value) == '{"n":' + "7" * 6000 + "}"


def test_a_field_named_twice_is_refused_or_kept_with_every_value():
    text = '{"callId":"1","caller":"111","x":{"a":1,"a":2},"caller":"222"}'

    with pytest.raises(nxjson.DuplicateKeyError, match="appears more than once"):
        nxjson.loads(text)
    kept = nxjson.loads(text, duplicates="keep")
    assert nxjson.duplicated_name(kept) in ("caller", "a")
    assert json.loads(nxjson.dumps(kept), object_pairs_hook=list) == json.loads(text, object_pairs_hook=list)


def test_nan_and_infinity_only_when_asked():
    with pytest.raises(ValueError, match="NaN"):
        nxjson.loads('{"n": NaN}')
    assert nxjson.loads('{"n": Infinity}', constants=True)["n"] == float("inf")


def test_a_zero_written_as_a_decimal_carries_no_information():
    assert completeness(nxjson.loads('{"a": 0e-500, "b": 1e-500}')) == 1


def test_exact_text_is_json_of_the_same_shape():
    text = '{"a":[1,{"b":0.30000000000000001,"c":[true,null,"x\\u00e9"]}],"d":{},"e":[],"f":1e400}'
    value = nxjson.loads(text)

    assert nxjson.dumps(value) == '{"a":[1,{"b":0.30000000000000001,"c":[true,null,"xé"]}],"d":{},"e":[],"f":1E+400}'
    assert json.loads(nxjson.dumps(value, sort_keys=True), parse_float=Decimal) == json.loads(text, parse_float=Decimal)


def test_a_string_never_reads_like_a_number():
    assert content_hash({"x": "\u0000#n:5"}) != content_hash({"x": 5})
    assert content_hash({"x": "5", "y": Decimal("1E+400")}) != content_hash({"x": 5, "y": Decimal("1E+400")})


def test_rows_nested_deeper_than_python_recursion_are_written():
    text = '{"callId":"deep","x":' + "[" * 700 + '{"a":1,"a":2}' + "]" * 700 + "}"
    value = nxjson.loads(text, duplicates="keep")

    assert nxjson.dumps(value) == text
    assert content_hash(value)


def test_hash_of_an_object_with_a_field_named_twice_ignores_key_order():
    one = nxjson.loads('{"b":1,"a":2,"a":3}', duplicates="keep")
    other = nxjson.loads('{"a":2,"b":1,"a":3}', duplicates="keep")

    assert content_hash(one) == content_hash(other)
