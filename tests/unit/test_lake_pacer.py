"""The backfill's pacer (:class:`tools.nxcdr.lake.PartitionPacer`) on a fake clock: the
call dates sent within a window never pass the budget, it waits only when the next
date would pass it, and it sends every item once, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import boto3
from hypothesis import given
from hypothesis import strategies as st
from nxcloud_cdr.times import now_utc

from tools.nxcdr.lake import FIREHOSE_PARTITIONS, PartitionPacer, backfill_range
from tools.nxcdr.target import _deployed_lake, _local_lake


@dataclass
class Run:
    """A pacer on a fake clock, and what it did: each send as (start, end, items)."""

    window: float
    budget: int
    send_seconds: list[float] = field(default_factory=list)  # how long each send takes, in turn
    now: float = 0.0
    sends: list[tuple[float, float, list[tuple[str | None, int]]]] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    def pacer(self) -> PartitionPacer:
        return PartitionPacer(self.window, self.budget, clock=lambda: self.now, sleep=self.sleep, say=self.said.append)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def send(self, items: list[tuple[str | None, int]]) -> None:
        start = self.now
        if self.send_seconds:
            self.now += self.send_seconds[len(self.sends) % len(self.send_seconds)]
        self.sends.append((start, self.now, items))


def dated(dates: list[str | None]) -> list[tuple[str | None, tuple[str | None, int]]]:
    return [(date, (date, number)) for number, date in enumerate(dates)]


def test_it_waits_when_the_next_date_would_pass_the_budget():
    run = Run(window=100.0, budget=3, send_seconds=[2.0])
    pacer = run.pacer()
    pacer.publish(dated(["a", "a", "b", "c", "d", "e", "f"]), run.send)

    assert [[date for date, _ in items] for _, _, items in run.sends] == [["a", "a", "b", "c"], ["d", "e", "f"]]
    # Until the window of the last date sent has passed: a whole window, right after it.
    assert run.slept == [100.0]
    assert run.said == [f"waiting 100 s: 3 call dates in this buffer interval (Firehose allows {FIREHOSE_PARTITIONS})"]

    run.now += 30.0  # d, e and f were sent by 104 s; now 134 s
    pacer.publish(dated(["g"]), run.send)
    assert run.slept == [100.0, 104.0 + 100.0 - 134.0]
    assert run.said[-1].startswith("waiting 70 s: 3 call dates")


def test_dates_whose_window_passed_count_no_more_and_dates_sent_again_count_once():
    run = Run(window=10.0, budget=2)
    pacer = run.pacer()
    pacer.publish(dated(["a", "b"]), run.send)
    pacer.publish(dated(["b", "a", "b"]), run.send)  # the same two: no wait
    assert run.slept == []
    run.now += 10.0  # both windows passed
    pacer.publish(dated(["c", "d"]), run.send)
    assert run.slept == [] and len(run.sends) == 3


def test_a_page_of_more_dates_than_the_budget_is_split():
    run = Run(window=5.0, budget=2)
    run.pacer().publish(dated([f"2019-01-0{day}" for day in range(1, 8)]), run.send)
    assert [len(items) for _, _, items in run.sends] == [2, 2, 2, 1]
    assert run.slept == [5.0, 5.0, 5.0]


def test_items_without_a_date_count_for_nothing():
    run = Run(window=5.0, budget=1)
    run.pacer().publish(dated([None, "a", None, None, "a", None]), run.send)
    assert len(run.sends) == 1 and run.slept == []


@given(
    dates=st.lists(st.one_of(st.none(), st.sampled_from("abcdefghij")), max_size=60),
    in_order=st.booleans(),
    budget=st.integers(1, 6),
    window=st.floats(1.0, 50.0),
    send_seconds=st.lists(st.floats(0.0, 30.0), min_size=1, max_size=5),
    pages=st.integers(1, 4),
)
def test_the_dates_open_during_any_send_never_pass_the_budget(dates, in_order, budget, window, send_seconds, pages):
    if in_order:  # a backfill's order: by date (the wrong clocks' at the end aside)
        dates = sorted(dates, key=lambda date: date or "")
    run = Run(window, budget, send_seconds)
    pacer = run.pacer()
    items = dated(dates)
    size = -(-len(items) // pages) or 1
    for first in range(0, len(items), size):
        pacer.publish(items[first : first + size], run.send)

    # Every item once, in order.
    assert [item for _, _, sent in run.sends for item in sent] == [item for _, item in items]
    for number, (start, _, sent) in enumerate(run.sends):
        # What may be open while it sends: its dates, and those of every earlier send
        # whose window had not passed when it started (a window counts from a send's end).
        open_dates = {date for date, _ in sent} | {
            date for _, end, earlier in run.sends[:number] if end + window > start for date, _ in earlier
        }
        open_dates.discard(None)
        assert len(open_dates) <= budget
    if len({date for date in dates if date is not None}) <= budget:
        assert run.slept == []


def test_the_window_of_a_deployed_stack_is_its_buffer_interval_and_a_local_one_has_none():
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    outputs = {"EventBusName": "calls", "LakeDeliveryStreamName": "call-changes"}
    assert _deployed_lake(session, outputs, {"LakeBufferSeconds": "120"}).buffer_seconds == 120
    assert _deployed_lake(session, outputs, {}).buffer_seconds == 300  # a stack from before the parameter
    local = {"endpoint": "http://127.0.0.1:1", "eventBus": "b", "deliveryStream": "s", "dir": "l", "eventsFile": "e"}
    lake = _local_lake(session, local)
    assert lake is not None and lake.buffer_seconds == 0


def test_a_window_is_held_to_the_months_a_right_clock_can_have():
    start, end = backfill_range("0001-01-01", "9999-01-01")

    now = now_utc()
    assert start == datetime(2015, 1, 1, tzinfo=UTC)
    assert end.day == 1 and end > now and (end - now).days < 32
