"""The recording archiver function's Lambda glue: configuration, clients, metrics.

Two events: a batch of the records table's stream (the items whose recordings are
pending), and the hourly schedule, which hands the archiver again the recordings that
failed in a way that may pass (:func:`.archiver.sweep`).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config

from .. import aws_clients
from ..config import RecordingSettings
from ..observability import count_under, lambda_context, logger, metrics
from ..times import now_utc
from .archiver import RecordingArchiver, handle_stream, sweep

# Lambda's default when no context says otherwise (a run from a shell).
_DEFAULT_REMAINING_MS = 15 * 60 * 1000
_archiver: RecordingArchiver | None = None
_settings: RecordingSettings | None = None
_sqs: Any = None
# The archiver's metrics' dimension (Recordings=archive), as the dashboard shows them.
DIMENSION = "archive"


def settings() -> RecordingSettings:
    global _settings
    if _settings is None:
        _settings = RecordingSettings.from_env()
    return _settings


def archiver() -> RecordingArchiver:
    """One per container: its clients keep their connections between batches."""
    global _archiver
    if _archiver is None:
        config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "max_attempts": 4})
        _archiver = RecordingArchiver.from_settings(
            aws_clients.dynamodb(), aws_clients.client("s3", config), settings()
        )
    return _archiver


def give_up(message: dict[str, Any]) -> None:
    """A recording the archiver will not retry by itself, in the failures queue (where
    the stream's given-up records go): an alarm watches it."""
    global _sqs
    queue = settings().failures_queue_url
    if not queue:
        return
    try:
        # Made on the first recording given up on, then kept: a client costs tens of ms.
        _sqs = _sqs or aws_clients.client("sqs")
        _sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(message, default=str))
    except Exception as exc:  # the item records the failure: the queue is the alarm's, not the record
        logger.warning("could not report a failed recording to the failures queue", extra={"error": str(exc)[:300]})


def _count(name: str, value: float = 1) -> None:
    count_under("Recordings", DIMENSION, name, value)


@lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "Records" not in event:  # the hourly schedule
        current = archiver()
        handed = sweep(current.dynamodb, current.table_name, now_utc())
        _count("RecordingRetriesScheduled", handed)
        return {"handed": handed}
    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: _DEFAULT_REMAINING_MS)
    answer = handle_stream(event, archiver(), lambda: remaining_ms() / 1000, _count, give_up)
    if answer["batchItemFailures"]:
        logger.warning("recordings to try again", extra={"records": len(answer["batchItemFailures"])})
    return answer
