"""NXCLOUD's signing, against its published worked example."""

from __future__ import annotations

import hashlib

import pytest
from nxcloud_cdr.signing import sign, signed_headers, string_to_sign, verify

EXAMPLE = {"access_key": "fme2na3kdi3ki", "access_secret": "abciiiko2k3", "action": "send", "biz_type": "1"}
EXAMPLE_BODY = '{"name":"牛小信","id":10001}'


def test_reproduces_nxclouds_published_example():
    assert (
        sign(
            EXAMPLE["access_key"],
            EXAMPLE["access_secret"],
            action="send",
            biz_type="1",
            ts=1655710885431,
            body=EXAMPLE_BODY,
        )
        == "87c3560d3331ae23f1021e2025722354"
    )


def test_string_to_sign_sorts_headers_and_appends_body_then_secret():
    text = string_to_sign("AK", "cc", "8", "123", '{"a":1}', "SECRET")
    assert text == 'accessKey=AK&action=cc&bizType=8&ts=123&body={"a":1}&accessSecret=SECRET'
    assert string_to_sign("AK", "cc", "8", "123", "", "S") == "accessKey=AK&action=cc&bizType=8&ts=123&accessSecret=S"


def test_sha256_on_request():
    expected = hashlib.sha256(string_to_sign("AK", "cc", "8", "1", "{}", "S").encode("utf-8")).hexdigest()
    assert sign("AK", "S", action="cc", biz_type="8", ts=1, body="{}", algorithm="sha256") == expected
    with pytest.raises(ValueError, match="algorithm"):
        sign("AK", "S", action="cc", biz_type="8", ts=1, algorithm="sha1")


def test_signed_headers_and_verify_round_trip():
    headers = signed_headers("AK", "S", action="cc", biz_type="8", body=EXAMPLE_BODY, ts_ms=1655710885431)
    assert headers == {
        "accessKey": "AK",
        "action": "cc",
        "bizType": "8",
        "ts": "1655710885431",
        "sign": sign("AK", "S", action="cc", biz_type="8", ts=1655710885431, body=EXAMPLE_BODY),
    }
    assert verify(headers, EXAMPLE_BODY, "S")
    assert verify({name.upper(): value for name, value in headers.items()}, EXAMPLE_BODY, "S")
    assert not verify(headers, EXAMPLE_BODY + " ", "S")  # the exact bytes are signed
    assert not verify(headers, EXAMPLE_BODY, "other secret")
    assert not verify({k: v for k, v in headers.items() if k != "ts"}, EXAMPLE_BODY, "S")


def test_sha256_headers_carry_algorithm_which_is_not_signed():
    headers = signed_headers("AK", "S", action="cc", biz_type="8", body="{}", ts_ms=5, algorithm="sha256")
    assert headers["algorithm"] == "sha256"
    assert verify(headers, "{}", "S")
    assert "algorithm" not in signed_headers("AK", "S", action="cc", biz_type="8", body="{}", ts_ms=5)


def test_fresh_ts_by_default():
    first = signed_headers("AK", "S", action="cc", biz_type="8")
    assert abs(int(first["ts"]) - __import__("time").time() * 1000) < 5000
