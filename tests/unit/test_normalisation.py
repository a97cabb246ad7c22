"""Time and phone number normalisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from nxcloud_cdr.phones import normalise_number
from nxcloud_cdr.times import epoch_ms, from_epoch, from_local_string, iso_utc, month_bucket, parse_zone


@pytest.mark.parametrize(
    ("text", "offset"),
    [("+08:00", 8 * 60), ("UTC+8", 8 * 60), ("-0530", -330), ("GMT-3", -180), ("UTC", 0), ("Z", 0)],
)
def test_fixed_offsets(text, offset):
    assert parse_zone(text).utcoffset(None) == timedelta(minutes=offset)


def test_iana_zone():
    zone = parse_zone("Asia/Hong_Kong")
    assert datetime(2023, 3, 29, 11, 36, 53, tzinfo=zone).astimezone(UTC).hour == 3


@pytest.mark.parametrize("text", ["Mars/Olympus", "+15:00", "eight"])
def test_bad_zone_is_refused(text):
    with pytest.raises(ValueError, match="zone"):
        parse_zone(text)


def test_epoch_units():
    assert from_epoch(1671440452, unit="s") == datetime(2022, 12, 19, 9, 0, 52, tzinfo=UTC)
    assert from_epoch(1690442492841, unit="ms") == datetime(2023, 7, 27, 7, 21, 32, 841000, tzinfo=UTC)
    assert from_epoch(1690442492841) == from_epoch(1690442492841, unit="ms")  # auto by magnitude
    assert from_epoch(1690442492) == from_epoch(1690442492, unit="s")
    assert from_epoch(0) is None and from_epoch(None) is None and from_epoch(-1) is None


def test_local_strings():
    utc8 = timezone(timedelta(hours=8))
    assert from_local_string("2023-11-17 13:42:30", utc8) == datetime(2023, 11, 17, 5, 42, 30, tzinfo=UTC)
    for unset in ("", "  ", None, "0000-00-00 00:00:00", "1970-01-01 08:00:00"):
        assert from_local_string(unset, utc8) is None
    with pytest.raises(ValueError, match="format"):
        from_local_string("2023-11-17T13:42:30", utc8)


def test_iso_is_fixed_width_and_sorts_in_time_order():
    early = datetime(2023, 1, 1, 0, 0, 0, 5000, tzinfo=UTC)
    late = datetime(2023, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert iso_utc(early) == "2023-01-01T00:00:00.005Z"
    assert iso_utc(late) == "2023-01-01T00:00:01.000Z"
    assert iso_utc(early) < iso_utc(late)
    assert epoch_ms(early) == 1672531200005
    assert month_bucket(datetime(2023, 1, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2)))) == "2023-02"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("85235757583", "85235757583"),
        ("+85235757584", "85235757584"),
        (" +852 3575-7584 ", "85235757584"),
        ("(852) 3575.7584", "85235757584"),
        ("NX09445G000025@43.134.225.234:5060", "NX09445G000025"),
        ("sip:85235757584@10.0.0.1", "85235757584"),
        ("tel:+85235757584", "85235757584"),
        ("", None),
        ("   ", None),
        (None, None),
        ("+", None),
    ],
)
def test_normalise_number(raw, key):
    assert normalise_number(raw) == key
