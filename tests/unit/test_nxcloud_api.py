"""The API client against the stand-in NXCLOUD, a real HTTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from nxcloud_cdr.nxcloud_api import NxcloudApiError, NxcloudClient, NxcloudConfigError

from devtools.fake_nxcloud import FakeNxcloud, generate_records

START_MS = 1_700_000_000_000
RECORDS = generate_records(150, START_MS, 3_600_000)
WINDOW = (START_MS // 1000, START_MS // 1000 + 3600)


@pytest.fixture
def fake() -> Iterator[FakeNxcloud]:
    with FakeNxcloud(RECORDS, hang_seconds=1.5) as server:
        yield server


def client_for(fake: FakeNxcloud, **overrides) -> NxcloudClient:
    options: dict = {"read_timeout": 0.5, "max_attempts": 4, "sleep": lambda _: None} | overrides
    return NxcloudClient(fake.base_url, fake.access_key, fake.access_secret, **options)


def test_pages_until_short_page_every_request_signed(fake):
    client = client_for(fake)

    pages = [client.cdr_page(*WINDOW, page) for page in (1, 2)]

    assert [len(page) for page in pages] == [100, 50]
    assert {row["callId"] for page in pages for row in page} == {r["callId"] for r in RECORDS}
    assert all(request["signed"] for request in fake.requests)
    sent = json.loads(fake.requests[0]["body"])
    assert sent == {"startTime": WINDOW[0], "endTime": WINDOW[1], "page": 1, "size": 100}


@pytest.mark.parametrize("fault", ["http500", "code88", "code99", "code1004", "hang", "malformed", "drop"])
def test_transient_failures_are_retried(fake, fault):
    fake.inject(fault, fault)

    rows = client_for(fake).cdr_page(*WINDOW, 1)

    assert len(rows) == 100
    assert len(fake.requests) == 3


def test_each_attempt_is_signed_afresh(fake):
    fake.inject("code1004")
    clock = iter([1_000, 2_000])
    fake.clock_ms = lambda: 2_000

    client_for(fake, clock_ms=lambda: next(clock)).cdr_page(*WINDOW, 1)

    bodies = [request["body"] for request in fake.requests]
    assert bodies[0] == bodies[1]
    assert all(request["signed"] for request in fake.requests)


def test_clock_skew_beyond_60_s_fails_after_retries(fake):
    skewed = client_for(fake, clock_ms=lambda: fake.clock_ms() - 120_000)

    with pytest.raises(NxcloudApiError, match="1004") as raised:
        skewed.cdr_page(*WINDOW, 1)

    assert raised.value.code == 1004
    assert len(fake.requests) == 4


@pytest.mark.parametrize("fault", ["code1003", "code1005"])
def test_configuration_errors_fail_at_once_and_loudly(fake, fault):
    fake.inject(fault)

    with pytest.raises(NxcloudConfigError, match="access key"):
        client_for(fake).cdr_page(*WINDOW, 1)

    assert len(fake.requests) == 1


def test_wrong_secret_is_a_configuration_error(fake):
    client = NxcloudClient(fake.base_url, fake.access_key, "wrong", sleep=lambda _: None)

    with pytest.raises(NxcloudConfigError, match="1003"):
        client.cdr_page(*WINDOW, 1)


def test_persistent_failure_gives_up_with_the_reason(fake):
    fake.inject(*["http500"] * 4)

    with pytest.raises(NxcloudApiError, match="HTTP 500"):
        client_for(fake).cdr_page(*WINDOW, 1)


def test_data_object_is_an_empty_page(fake):
    fake.inject("data_object")

    assert client_for(fake).cdr_page(*WINDOW, 1) == []


def test_other_code_fails_with_nxclouds_message(fake, monkeypatch):
    monkeypatch.setattr(
        fake, "answer", lambda *_: (200, {"code": 41000, "msg": "End date cannot be empty", "data": {}})
    )

    with pytest.raises(NxcloudApiError, match="End date cannot be empty") as raised:
        client_for(fake).cdr_page(*WINDOW, 1)

    assert raised.value.code == 41000


def test_secret_never_in_repr(fake):
    assert fake.access_secret not in repr(client_for(fake))


def test_backoff_grows_exponentially(fake):
    fake.inject("http500", "http500", "http500")
    waits: list[float] = []

    client_for(fake, sleep=waits.append, backoff_seconds=0.5).cdr_page(*WINDOW, 1)

    assert waits == [0.5, 1.0, 2.0]


def test_direction_filter_is_one_more_than_the_record_field(fake):
    client_for(fake).cdr_page(*WINDOW, 1, direction="inbound")
    client_for(fake).cdr_page(*WINDOW, 1, direction="aicc")

    assert [json.loads(r["body"]).get("direction") for r in fake.requests] == [1, 3]
