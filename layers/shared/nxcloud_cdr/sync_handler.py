"""The sync function's Lambda glue: configuration, credentials, lease, metrics.

Events: EventBridge's scheduled event runs the regular sync; ``{"from": ..., "to": ...}``
(epoch seconds or milliseconds, or ISO-8601; naive times are UTC) runs a backfill of
that window without moving the checkpoint.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from . import aws_clients
from .config import SyncSettings
from .nxcloud_api import NxcloudClient, NxcloudConfigError
from .observability import count, lambda_context, logger, metrics
from .secret_store import secret_string
from .store import CallStore
from .sync import KIND, CdrSync, SyncReport
from .sync_state import SyncState
from .times import epoch_ms, from_epoch, now_utc
from .write_rule import RecordWriter

# Lambda's default when no context says otherwise (a run from a shell).
_DEFAULT_REMAINING_MS = 15 * 60 * 1000


class NotConfiguredError(Exception):
    """NXCLOUD API credentials are not set: the sync has nothing to run with."""


def credentials(settings: SyncSettings) -> tuple[str, str]:
    if settings.access_key or settings.access_secret:
        pair = (settings.access_key, settings.access_secret)
    elif settings.credentials_secret_id:
        text = secret_string(settings.credentials_secret_id)
        try:
            value = json.loads(text)
            pair = (str(value.get("accessKey") or ""), str(value.get("accessSecret") or ""))
        except (ValueError, AttributeError):
            raise NotConfiguredError(
                'the credentials secret is not JSON like {"accessKey": "...", "accessSecret": "..."}'
            ) from None
    else:
        pair = ("", "")
    if not all(part.strip() for part in pair):
        raise NotConfiguredError("NXCLOUD API credentials are not set (see README, 'Configure the sync')")
    return pair[0].strip(), pair[1].strip()


def parse_moment(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        moment = from_epoch(value)
        if moment is None:
            raise ValueError(f"not a time: {value!r}")
        return moment
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_moment(int(text))
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a time: {value!r}")


def _emit(report: SyncReport) -> None:
    count("SyncPages", report.pages)
    count("SyncRecordsNew", report.new)
    count("SyncRecordsUpdated", report.updated)
    count("SyncRecordsUnchanged", report.unchanged)
    count("SyncCopiesKept", report.kept)
    count("SyncRecordsRejected", report.rejected)
    if report.lag_seconds is not None:
        count("SyncCheckpointLag", report.lag_seconds, MetricUnit.Seconds)


def run(event: dict[str, Any], context: Any, settings: SyncSettings | None = None) -> dict[str, Any]:
    """One sync run. Every way it can fail is counted (``SyncConfigErrors`` or
    ``SyncFailures``, which the alarms watch), a secret or a lease that cannot be read
    included, and re-raised, so that Lambda records the error."""
    try:
        return _run(event, context, settings)
    except NxcloudConfigError:
        logger.exception("NXCLOUD refused the sync's credentials or request")
        count("SyncConfigErrors")
        raise
    except Exception:
        # NXCLOUD, Secrets Manager or the store failing, or a bug: the checkpoint and
        # cursor stay at the last stored page, and the next run goes on from there.
        logger.exception("sync run failed; the checkpoint stays at the last stored page")
        count("SyncFailures")
        raise


def _run(event: dict[str, Any], context: Any, settings: SyncSettings | None) -> dict[str, Any]:
    settings = settings or SyncSettings.from_env()
    logger.append_keys(sync=KIND)
    try:
        access_key, access_secret = credentials(settings)
    except NotConfiguredError as exc:
        # Not an error of the run: a stack deployed without credentials says so every
        # time, without failing (and being retried) every 10 minutes forever.
        logger.warning(f"sync not configured: {exc}")
        count("SyncNotConfigured")
        return {"status": "not_configured", "message": str(exc)}

    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: _DEFAULT_REMAINING_MS)
    client = aws_clients.dynamodb()
    store = CallStore.from_settings(client, settings)
    writer = RecordWriter.from_settings(client, settings)
    state = SyncState(client, settings.table_name, KIND)
    api = NxcloudClient(
        settings.api_base_url,
        access_key,
        access_secret,
        algorithm=settings.sign_algorithm,
        read_timeout=settings.read_timeout_seconds,
        max_attempts=settings.max_attempts,
        backoff_seconds=settings.backoff_seconds,
    )
    sync = CdrSync(api, store, writer, state, settings, now=now_utc, remaining_ms=remaining_ms)

    # Unique to this invocation: Lambda may deliver one event twice under one request id,
    # and only the run that holds the lease moves the checkpoint.
    owner = f"{getattr(context, 'aws_request_id', '') or 'local'}#{uuid.uuid4().hex}"
    if not state.acquire(owner, now_ms=epoch_ms(now_utc()), ttl_ms=remaining_ms() + 60_000):
        logger.warning("another sync run holds the lease; this one stops")
        count("SyncBusy")
        return {"status": "busy"}
    try:
        if "from" in event or "to" in event:
            start, end = parse_moment(event["from"]), parse_moment(event.get("to") or now_utc().isoformat())
            window = int(event["window"]) if event.get("window") else None
            report = sync.backfill(int(start.timestamp()), int(end.timestamp()), window)
        else:
            report = sync.run_scheduled()
    finally:
        state.release(owner)
    _emit(report)
    logger.info("sync run finished", extra=report.as_dict())
    return report.as_dict()


@lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_dimension(name="Sync", value=KIND)
    return run(event, context)
