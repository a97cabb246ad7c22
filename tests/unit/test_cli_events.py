"""`nxcdr events --stack` reads the copy of every event in the stack's log group (moto's
CloudWatch Logs): since a time, and with --follow each new one, including a copy
written after a newer one (EventBridge writes its log target a moment after the event's
time), each printed once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tools.nxcdr import events
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.target import Lake

GROUP = "/aws/events/nxcloud-cdr-calls"
# CloudWatch Logs refuses events more than 2 hours ahead or 14 days old.
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def logs() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        client.create_log_group(logGroupName=GROUP)
        client.create_log_stream(logGroupName=GROUP, logStreamName="events")
        yield client


def lake(logs: Any, group: str = GROUP) -> Lake:
    return Lake(None, "bus", None, "", "full", "", lambda _: "", logs=logs, events_log_group=group)


def put(logs: Any, call_id: str, at: datetime) -> None:
    message = json.dumps({"id": call_id, "detail": {"call": {"call_id": call_id}}})
    logs.put_log_events(
        logGroupName=GROUP,
        logStreamName="events",
        logEvents=[{"timestamp": int(at.timestamp() * 1000), "message": message}],
    )


def test_since_reads_what_the_group_holds_from_that_time(logs):
    for number in range(5):
        put(logs, f"c{number}", NOW + timedelta(minutes=number))

    read = [event["id"] for event in events._deployed_events(lake(logs), NOW + timedelta(minutes=2), follow=False)]

    assert read == ["c2", "c3", "c4"]


def test_follow_prints_a_copy_written_late_once_and_every_event_once(logs):
    put(logs, "first", NOW)
    put(logs, "newer", NOW + timedelta(seconds=30))
    polls: list[float] = []

    def sleep(_: float) -> None:
        polls.append(1)
        if len(polls) == 1:
            # Written now, with the time of its change: before the newest one printed.
            put(logs, "late", NOW + timedelta(seconds=10))
        elif len(polls) == 2:
            put(logs, "next", NOW + timedelta(seconds=40))
        else:
            raise KeyboardInterrupt

    read: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        for event in events._deployed_events(lake(logs), NOW - timedelta(minutes=1), follow=True, sleep=sleep):
            read.append(event["id"])

    assert read == ["first", "newer", "late", "next"]


def test_a_stack_without_the_copy_says_so(logs):
    with pytest.raises(OperatorError, match="EventLogDays=0"):
        list(events._deployed_events(lake(logs, group=""), NOW, follow=False))
