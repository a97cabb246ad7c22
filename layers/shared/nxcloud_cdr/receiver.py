"""What every push function does: check the token, read the body, store it once, answer.

The answer follows one rule: 200 only once the record is durably stored (or was stored
before); 4xx for a body that can never become a record, after it is kept in quarantine;
5xx only when the store (or the token's secret) did not answer, so that NXCLOUD
retries. No exception leaves a handler: anything unexpected about a body quarantines
it (422) so that it can be replayed after a fix.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.config import Config
from pydantic import ValidationError

from . import aws_clients, nxjson
from .apigw import error_response, json_response, read_request
from .config import PushSettings
from .deadline import Deadline, OutOfTimeError
from .kinds import PushKind
from .mapping import MissingIdError
from .observability import count, lambda_context, logger, metrics
from .push_auth import PushToken, push_token_from_settings
from .records import CallRecord
from .store import CallStore
from .store_errors import StoreError
from .times import now_utc
from .write_rule import RecordWriter, UnstorableError

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# The store client's limits, and from them the time a write keeps in hand before each
# step: the longest one call can take (every attempt timing out, standard mode's backoff
# of up to a second between them) and the time to answer after it.
_CONNECT_S, _READ_S, _ATTEMPTS = 1, 2, 2
STEP_RESERVE_MS = _ATTEMPTS * (_CONNECT_S + _READ_S) * 1000 + 1000 + 500


@dataclass
class Runtime:
    """What a container builds once and every invocation reuses."""

    settings: PushSettings
    store: CallStore
    writer: RecordWriter
    token: PushToken


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        settings = PushSettings.from_env()
        # NXCLOUD documents no push timeout, so answer fast; and a store that hangs must
        # still get its 503 out before the function's 10 s Timeout (past it, API Gateway
        # answers an error of its own): one call is at most 2 x (1 s + 2 s) + backoff.
        client = aws_clients.dynamodb(
            Config(
                connect_timeout=_CONNECT_S,
                read_timeout=_READ_S,
                retries={"mode": "standard", "total_max_attempts": _ATTEMPTS},
            ),
        )
        _runtime = Runtime(
            settings,
            CallStore.from_settings(client, settings),
            RecordWriter.from_settings(client, settings),
            push_token_from_settings(settings),
        )
        # What the container has built so far (modules, models, the client) lives as
        # long as it does: the collector need not walk it again in every push's
        # collections (about 10% of a warm push on DynamoDB Local).
        gc.freeze()
    return _runtime


def reset_runtime() -> None:
    """Forget the container's configuration (tests and the local server change it)."""
    global _runtime
    _runtime = None


def parse_body(text: str) -> Any:
    """NXCLOUD's JSON, exactly and strictly: no NaN/Infinity, no field named twice."""
    return nxjson.loads(text)


def _validation_message(exc: ValidationError) -> str:
    # Field paths and reasons only: the values may be phone numbers.
    problems = [f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()]
    return "invalid fields: " + "; ".join(problems[:5])


_OUTCOME_METRICS = {
    "stored": "RecordsStored",
    "updated": "RecordsUpdated",
    "duplicate": "Duplicates",
    "kept": "CopiesKept",
}


class Receiver:
    def __init__(self, kind: PushKind, rt: Runtime) -> None:
        self.kind = kind
        self.rt = rt

    def _reject(
        self, status: int, reason: str, message: str, body: bytes, nxcloud_id: str | None = None
    ) -> dict[str, Any]:
        try:
            quarantine_id = self.rt.store.quarantine(
                self.kind.name, body, reason=reason, message=message, received_at=now_utc(), nxcloud_id=nxcloud_id
            )
        except Exception:
            logger.exception("quarantine write failed; asking NXCLOUD to retry", extra={"reason": reason})
            count("StoreFailures")
            return error_response(503, "store_unavailable", "the push could not be kept; retry later")
        logger.warning("push rejected and quarantined", extra={"reason": reason, "quarantineId": quarantine_id})
        count("Rejected")
        return error_response(status, reason, message, quarantineId=quarantine_id)

    def receive(self, event: dict[str, Any], remaining_ms: Callable[[], int] | None = None) -> dict[str, Any]:
        """The answer to one push; ``remaining_ms`` is the invocation's time left (none:
        unbounded, as in a replay from the CLI)."""
        received_at = now_utc()
        deadline = None if remaining_ms is None else Deadline(remaining_ms, STEP_RESERVE_MS)
        request = read_request(event)
        logger.append_keys(pushType=self.kind.name, apiRequestId=request.request_id)
        try:
            which = self.rt.token.match(request.path_token)
        except Exception:
            logger.exception("push token could not be read")
            count("ConfigErrors")
            return error_response(503, "not_configured", "the receiver cannot check tokens; retry later")
        if which is None:
            logger.warning("push refused: wrong or missing token", extra={"sourceIp": request.source_ip})
            count("Forbidden")
            return error_response(403, "forbidden", "wrong or missing token in the push URL")
        header = self.kind.token_header
        in_header = self.rt.token.match(request.headers.get(header, "")) if header else which
        if in_header is None:
            logger.warning("push refused: wrong or missing token header", extra={"sourceIp": request.source_ip})
            count("Forbidden")
            return error_response(403, "forbidden", f"wrong or missing push token in the {header!r} header")
        if "previous" in (which, in_header):
            # Until NXCLOUD uses the new URLs (and the callback's new token); this falls
            # to 0 before the overlap ends.
            count("PushesOnPreviousToken")
        body = request.body
        try:
            return self._store(body, received_at, deadline)
        except Exception:
            # A bug of ours, not NXCLOUD's: keep the body for a replay after the fix.
            logger.exception("push could not be processed")
            return self._reject(422, "unprocessable", "the record could not be read", body)

    def _record(self, body: bytes) -> CallRecord | dict[str, Any]:
        """The record in a body, or the answer that refuses the body."""
        limit = self.rt.settings.max_body_bytes
        if len(body) > limit:
            return self._reject(413, "too_large", f"body of {len(body)} bytes is over the {limit}-byte limit", body)
        try:
            # A byte order mark says UTF-8 and nothing of the record: not part of its text.
            text = body.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            return self._reject(400, "invalid_encoding", "body is not UTF-8 text", body)
        try:
            payload = parse_body(text)
        except nxjson.DuplicateKeyError as exc:
            return self._reject(400, "duplicate_key", str(exc), body)
        except (ValueError, RecursionError) as exc:
            return self._reject(400, "invalid_json", f"body is not JSON: {str(exc)[:200]}", body)
        if not isinstance(payload, dict):
            return self._reject(400, "not_an_object", f"body is a JSON {type(payload).__name__}, not an object", body)
        try:
            return self.kind.map(payload, text, self.rt.settings.zone)
        except MissingIdError as exc:
            return self._reject(400, "missing_id", str(exc), body)
        except ValidationError as exc:
            return self._reject(422, "invalid_fields", _validation_message(exc), body)

    def _store(self, body: bytes, received_at: datetime, deadline: Deadline | None) -> dict[str, Any]:
        record = self._record(body)
        if not isinstance(record, CallRecord):
            return record
        try:
            result = self.rt.writer.write(record, received_at, source="push", deadline=deadline)
        except UnstorableError as exc:
            return self._reject(422, "unstorable", str(exc), body, record.nxcloud_id)
        except OutOfTimeError as exc:
            # Before Lambda stops the function and API Gateway answers an error of its
            # own: what was written is joined by NXCLOUD's retry.
            logger.warning("out of time before the write finished; asking NXCLOUD to retry", extra={"why": str(exc)})
            count("StoreFailures")
            return error_response(503, "out_of_time", "the record could not be stored in time; retry later")
        except StoreError:
            logger.exception("store write failed; asking NXCLOUD to retry")
            count("StoreFailures")
            return error_response(503, "store_unavailable", "the record was not stored; retry later")
        # One line per push at the default level: the metrics line, which carries the
        # outcome and the id (never a number: ids are NXCLOUD's, not people's).
        # Rejections and failures log a line of their own at WARNING/ERROR.
        logger.debug("push stored", extra={"nxcloudId": record.nxcloud_id, "outcome": result.outcome})
        count(_OUTCOME_METRICS[result.outcome])
        if record.problems:
            count("FieldProblems")
        metrics.add_metadata(key="nxcloudId", value=record.nxcloud_id)
        metrics.add_metadata(key="outcome", value=result.outcome)
        return json_response(200, {"ok": True, "outcome": result.outcome, "id": record.nxcloud_id})


def make_handler(kind: PushKind) -> Handler:
    """The Lambda handler of one push type."""

    @lambda_context
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Powertools keeps the dimensions of an invocation that counted nothing (it
        # flushes only a non-empty set): a function sharing the process (make local) or
        # the next invocation would add PushType twice.
        metrics.clear_metrics()
        metrics.add_dimension(name="PushType", value=kind.name)
        try:
            rt = runtime()
        except Exception:
            # Wrong settings or no AWS client: ours to fix, and NXCLOUD's retries must
            # find the push still unanswered then, so 503 rather than a 500.
            logger.exception("the receiver is not configured")
            count("ConfigErrors")
            return error_response(503, "not_configured", "the receiver is not configured; retry later")
        return Receiver(kind, rt).receive(event, getattr(context, "get_remaining_time_in_millis", None))

    return handler
