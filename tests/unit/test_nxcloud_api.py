"""The API client against the stand-in NXCLOUD, a real HTTP server on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
import requests
from nxcloud_cdr.nxcloud_api import (
    NxcloudApiError,
    NxcloudClient,
    NxcloudConfigError,
    NxcloudDeadlineError,
    retry_after_seconds,
)

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


@pytest.mark.parametrize(
    "fault",
    ["http500", "http429", "http429_json", "code88", "code99", "code429", "code1004", "hang", "malformed", "drop"],
)
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
        fake, "answer", lambda *_: (200, {"code": 41000, "msg": "End date cannot be empty", "data": {}}, {})
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


# Rate limiting (HTTP 429 in any form, code 429) and Retry-After.

NOW_MS = 1_714_564_800_000  # a whole second: HTTP-dates have no fraction


@pytest.mark.parametrize("fault", ["http429", "http429_json", "code429"])
def test_rate_limiting_in_every_form_is_retried_then_succeeds(fake, fault):
    fake.inject(fault, fault, fault)
    waits: list[float] = []

    rows = client_for(fake, sleep=waits.append, backoff_seconds=0.25).cdr_page(*WINDOW, 1)

    assert len(rows) == 100
    assert [request["fault"] for request in fake.requests] == [fault, fault, fault, None]
    # http429 carries Retry-After: 1; the others fall back on the backoff.
    assert waits == ([1.0, 1.0, 1.0] if fault == "http429" else [0.25, 0.5, 1.0])


def test_persistent_rate_limiting_fails_with_the_reason(fake):
    fake.inject(*["http429"] * 4)

    with pytest.raises(NxcloudApiError, match="HTTP 429") as raised:
        client_for(fake).cdr_page(*WINDOW, 1)

    assert not isinstance(raised.value, NxcloudDeadlineError)
    assert raised.value.code == 429


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1", 1.0),
        ("7", 7.0),
        ("0", 0.0),
        ("-5", 0.0),  # never negative
        (formatdate(NOW_MS / 1000 + 7, usegmt=True), 7.0),
        (formatdate(NOW_MS / 1000 - 30, usegmt=True), 0.0),
        ("soon", 5.0),  # unreadable: the backoff
    ],
)
def test_retry_after_is_the_wait_used(fake, header, expected):
    fake.clock_ms = lambda: NOW_MS
    fake.retry_after = header
    fake.inject("http429")
    waits: list[float] = []

    client = client_for(fake, sleep=waits.append, backoff_seconds=5.0, clock_ms=lambda: NOW_MS)
    assert len(client.cdr_page(*WINDOW, 1)) == 100

    assert waits == [expected]


@pytest.mark.parametrize("header", ["120", formatdate(NOW_MS / 1000 + 3600, usegmt=True)])
def test_retry_after_longer_than_a_run_should_sleep_stops_the_call_cleanly(fake, header):
    fake.clock_ms = lambda: NOW_MS
    fake.retry_after = header
    fake.inject("http429")
    waits: list[float] = []

    client = client_for(fake, sleep=waits.append, clock_ms=lambda: NOW_MS)
    with pytest.raises(NxcloudDeadlineError, match="asks to retry in"):
        client.cdr_page(*WINDOW, 1)

    assert waits == [] and len(fake.requests) == 1


def test_retry_after_reader():
    assert retry_after_seconds(" 3 ", NOW_MS, 60) == 3.0
    assert retry_after_seconds("Wed, 01 May 2024 12:00:10 GMT", NOW_MS, 60) == 10.0
    assert retry_after_seconds("Wed, 01 May 2024 12:00:10", NOW_MS, 60) == 10.0  # no zone: UTC
    assert retry_after_seconds("Wed, 01 May 2024 20:00:10 +0800", NOW_MS, 60) == 10.0
    assert retry_after_seconds("5", NOW_MS, 2.5) == 2.5
    for unreadable in (None, "", "nan", "inf", "1e3", "tomorrow", "Wed, 99 Foo 2024"):
        assert retry_after_seconds(unreadable, NOW_MS, 60) is None


# Deadlines. The fake clock's sleep moves its monotonic time, so nothing really waits.


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class RecordingSession(requests.Session):
    """A real session that notes the timeout of every request."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent: list[tuple[float, tuple[float, float]]] = []  # (monotonic time, timeout)

    def request(self, method, url, *args, **kwargs):
        self.sent.append((self.clock.now, kwargs["timeout"]))
        return super().request(method, url, *args, **kwargs)


def deadline_client(fake: FakeNxcloud, clock: FakeClock, **overrides) -> NxcloudClient:
    return client_for(fake, sleep=clock.sleep, monotonic=clock.monotonic, **overrides)


def test_no_deadline_is_the_old_behaviour(fake):
    clock = FakeClock()
    session = RecordingSession(clock)
    fake.inject("http500", "http500")

    deadline_client(fake, clock, read_timeout=30.0, session=session).cdr_page(*WINDOW, 1)

    assert [timeout for _, timeout in session.sent] == [(5.0, 30.0)] * 3
    assert clock.waits == [1.0, 2.0]


def test_a_backoff_past_the_deadline_is_not_slept(fake):
    clock = FakeClock()
    deadline = clock.now + 0.9  # the first wait (1 s) would end past it
    fake.inject("http500", "http500")

    with pytest.raises(NxcloudDeadlineError, match=r"out of time after 1 attempt.*HTTP 500") as raised:
        deadline_client(fake, clock).cdr_page(*WINDOW, 1, deadline=deadline)

    assert clock.waits == [] and clock.now <= deadline
    assert len(fake.requests) == 1
    assert raised.value.attempts == 1 and raised.value.reason == "HTTP 500"
    assert isinstance(raised.value, NxcloudApiError) and not isinstance(raised.value, NxcloudConfigError)


def test_waits_while_time_allows_then_stops(fake):
    clock = FakeClock()
    deadline = clock.now + 1.2
    fake.inject("code99", "code99", "code99")

    with pytest.raises(NxcloudDeadlineError, match="code 99") as raised:
        deadline_client(fake, clock, backoff_seconds=0.5).cdr_page(*WINDOW, 1, deadline=deadline)

    # 0.5 s wait leaves 0.7 s (more than the 0.5 s an attempt needs); the next, 1 s, does not fit.
    assert clock.waits == [0.5] and clock.now <= deadline
    assert len(fake.requests) == 2
    assert raised.value.code == 99


def test_a_retry_after_past_the_deadline_is_not_slept_nor_shortened(fake):
    clock = FakeClock()
    fake.retry_after = "10"
    fake.inject("http429")

    with pytest.raises(NxcloudDeadlineError, match="HTTP 429"):
        deadline_client(fake, clock, backoff_seconds=0.1).cdr_page(*WINDOW, 1, deadline=clock.now + 5)

    assert clock.waits == [] and len(fake.requests) == 1


def test_a_deadline_already_past_makes_no_request(fake):
    clock = FakeClock()

    with pytest.raises(NxcloudDeadlineError, match="before the first attempt") as raised:
        deadline_client(fake, clock).cdr_page(*WINDOW, 1, deadline=clock.now - 1)
    with pytest.raises(NxcloudDeadlineError):  # less than min_attempt_seconds left
        deadline_client(fake, clock, min_attempt_seconds=0.5).cdr_page(*WINDOW, 1, deadline=clock.now + 0.4)

    assert fake.requests == [] and clock.waits == []
    assert raised.value.attempts == 0 and raised.value.reason is None and raised.value.code is None


def test_attempt_timeouts_never_exceed_the_time_left(fake):
    clock = FakeClock()
    session = RecordingSession(clock)
    deadline = clock.now + 2.5
    fake.inject("http500")

    rows = deadline_client(fake, clock, read_timeout=30.0, session=session, backoff_seconds=0.5).cdr_page(
        *WINDOW, 1, deadline=deadline
    )

    assert len(rows) == 100
    assert [timeout for _, timeout in session.sent] == [(2.5, 2.5), (2.0, 2.0)]
    for started, (connect, read) in session.sent:
        assert connect <= deadline - started and read <= deadline - started


def test_a_generous_deadline_changes_nothing(fake):
    clock = FakeClock()
    session = RecordingSession(clock)
    fake.inject(*["http500"] * 4)

    with pytest.raises(NxcloudApiError, match="failed after 4 attempts") as raised:
        deadline_client(fake, clock, read_timeout=30.0, session=session).cdr_page(*WINDOW, 1, deadline=clock.now + 3600)

    assert not isinstance(raised.value, NxcloudDeadlineError)
    assert [timeout for _, timeout in session.sent] == [(5.0, 30.0)] * 4
    assert clock.waits == [1.0, 2.0, 4.0]


def test_deadline_in_is_on_the_clients_clock(fake):
    clock = FakeClock(now=50.0)

    assert deadline_client(fake, clock).deadline_in(12.5) == 62.5


def test_a_hang_ends_at_the_deadline_not_at_the_read_timeout(fake):
    fake.hang_seconds = 20  # ended at once when the stand-in stops
    fake.inject(*["hang"] * 4)
    waits: list[float] = []
    client = client_for(fake, read_timeout=30.0, sleep=waits.append)  # the real monotonic clock

    started = time.monotonic()
    with pytest.raises(NxcloudDeadlineError, match=r"out of time after 1 attempt.*ReadTimeout"):
        client.cdr_page(*WINDOW, 1, deadline=client.deadline_in(1.0))
    elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 3.0
    assert waits == [] and len(fake.requests) == 1


def test_a_last_attempt_cut_short_by_the_deadline_is_out_of_time(fake):
    fake.hang_seconds = 20
    fake.inject("hang")
    client = client_for(fake, read_timeout=30.0, max_attempts=1)

    with pytest.raises(NxcloudDeadlineError, match="ReadTimeout"):
        client.cdr_page(*WINDOW, 1, deadline=client.deadline_in(0.6))


def test_bad_rows_are_served_as_given(fake):
    no_id = {k: v for k, v in RECORDS[0].items() if k != "callId"}
    bad_time = RECORDS[1] | {"callId": "bad-time", "startTime": "yesterday"}  # in every window
    fake.records = [no_id, bad_time]

    rows = client_for(fake).cdr_page(*WINDOW, 1)

    assert rows == [bad_time, no_id]
    assert client_for(fake).cdr_page(0, 10, 1) == [bad_time]
