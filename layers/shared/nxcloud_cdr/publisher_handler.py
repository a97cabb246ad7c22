"""The change publisher function's Lambda glue: configuration, clients, metrics.

Its event is a batch of the records table's stream (call items only, by the event
source's filter); :meth:`.publisher.ChangePublisher.publish_records` does the work.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from . import aws_clients
from .config import PublisherSettings
from .observability import count_under, lambda_context, logger, metrics
from .publisher import ChangePublisher, Published, batch_answer, number_policy, sequence_numbers
from .secret_store import secret_string, secrets_client

_publisher: ChangePublisher | None = None
_settings: PublisherSettings | None = None
# The publisher's metrics' dimension (Events=publish), as the dashboard shows them.
DIMENSION = "publish"
# botocore's standard retries (throttling included) before an entry counts as refused.
_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})


def settings() -> PublisherSettings:
    global _settings
    if _settings is None:
        _settings = PublisherSettings.from_env()
    return _settings


def publisher() -> ChangePublisher:
    """One per container: its clients keep their connections, and the salt (hashed
    numbers) is read once. Raises when the salt cannot be read; the next invocation
    tries again."""
    global _publisher
    if _publisher is None:
        current = settings()
        numbers = number_policy(
            current.phone_numbers,
            current.phone_number_salt_secret_id,
            lambda secret_id: secret_string(secret_id, secrets_client()),
        )
        _publisher = ChangePublisher(
            aws_clients.client("events", _CONFIG),
            current.event_bus_name,
            current.zone,
            numbers,
            firehose=aws_clients.client("firehose", _CONFIG) if current.delivery_stream_name else None,
            stream_name=current.delivery_stream_name,
        )
    return _publisher


def _count(name: str, value: float = 1) -> None:
    if value:  # a count of 0 is not sent: an invocation that published nothing leaves no metric
        count_under("Events", DIMENSION, name, value)


def _count_outcome(outcome: Published) -> None:
    _count("ChangesPublished", outcome.published)
    _count("NoChange", outcome.no_change)
    _count("ChangeErrors", outcome.errors)
    _count("EventsFailed", outcome.events_failed)
    _count("LakeRowsFailed", outcome.rows_failed)


@lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings()  # a wrong setting fails the invocation (the function's errors alarm), not the records
    try:
        current = publisher()
    except Exception as exc:  # the salt unreadable: every record again later, never clear numbers
        _count("PublisherUnready")
        logger.warning("cannot publish: the phone-number salt is unreadable", extra={"error": type(exc).__name__})
        return batch_answer(sequence_numbers(event))
    outcome = current.publish_records(event.get("Records") or [])
    _count_outcome(outcome)
    return batch_answer(outcome.failed)
