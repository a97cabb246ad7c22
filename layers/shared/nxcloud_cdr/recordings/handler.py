"""The recording archiver function's Lambda glue: configuration, clients, metrics."""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from .. import aws_clients
from ..config import RecordingSettings
from ..observability import count, logger, metrics
from .archiver import RecordingArchiver, handle_stream

# Lambda's default when no context says otherwise (a run from a shell).
_DEFAULT_REMAINING_MS = 15 * 60 * 1000
_archiver: RecordingArchiver | None = None
# The archiver's metrics' dimension (Recordings=archive), as the dashboard shows them.
DIMENSION = "archive"


def archiver() -> RecordingArchiver:
    """One per container: its clients keep their connections between batches."""
    global _archiver
    if _archiver is None:
        settings = RecordingSettings.from_env()
        config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "max_attempts": 4})
        _archiver = RecordingArchiver.from_settings(aws_clients.dynamodb(), aws_clients.client("s3", config), settings)
    return _archiver


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_dimension(name="Recordings", value=DIMENSION)
    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: _DEFAULT_REMAINING_MS)
    answer = handle_stream(event, archiver(), lambda: remaining_ms() / 1000, count)
    if answer["batchItemFailures"]:
        logger.warning("recordings to try again", extra={"records": len(answer["batchItemFailures"])})
    return answer
