"""A client of NXCLOUD's signed HTTP API, with the retries its failures call for.

What is retried (with exponential backoff, a fresh ``ts`` and signature each time):
connection errors and timeouts, HTTP 5xx, HTTP 429 (whatever its body), a body that is
not JSON, NXCLOUD codes 88 and 99 (request failed, system error), 429 (rate limited) and
1004 (timestamp expired). A ``Retry-After`` header on a retried answer (delta-seconds or
an HTTP-date) replaces the backoff for that wait (never negative); one longer than
``max_retry_after`` (60 s) is not slept at all: the call raises
:class:`NxcloudDeadlineError` at once, so that a sync stops cleanly and the next run goes
on. The body is read exactly (:mod:`.nxjson`): a row's numbers and repeated fields stay as
sent. Codes 1001-1005 otherwise are configuration errors
(:class:`NxcloudConfigError`): retrying cannot fix a wrong key. Any other non-zero code
fails the call with NXCLOUD's ``msg``.

Deadlines: :meth:`NxcloudClient.call` and :meth:`NxcloudClient.cdr_page` take an optional
``deadline``, a time on the client's monotonic clock (``time.monotonic`` unless another
``monotonic`` is injected; :meth:`NxcloudClient.deadline_in` makes one from seconds left).
No attempt starts with less than ``min_attempt_seconds`` left, an attempt's connect and
read timeouts are cut to the time left, and a wait that would end within
``min_attempt_seconds`` of the deadline is not slept: the call raises
:class:`NxcloudDeadlineError` instead, with the last failure, so the caller can stop
cleanly and resume later. ``requests`` applies the read timeout to each socket read, so
an attempt can still overrun the deadline by its connect time (at most the time left) or
by a server that trickles its body: leave a margin.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from . import nxjson
from .enums import CDR_DIRECTION_FILTER
from .signing import signed_headers

CDR_PAGE_PATH = "/saas/cc/openapi/cdr/page"
CDR_ACTION = "cc"
CDR_BIZ_TYPE = "8"
CDR_PAGE_SIZE = 100  # the API's maximum

RATE_LIMITED = 429  # as an HTTP status and as an NXCLOUD code
_RETRIED_CODES = {88, 99, RATE_LIMITED, 1004}
_CONFIG_CODES = {
    1001: "missing common header",
    1002: "parameter error",
    1003: "invalid signature",
    1005: "insufficient permission",
}
_DELTA_SECONDS = re.compile(r"-?\d+(?:\.\d+)?")


class NxcloudApiError(Exception):
    """A call failed after its retries; the message says why."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NxcloudConfigError(NxcloudApiError):
    """NXCLOUD refused the credentials or the request shape (codes 1001-1005)."""


class NxcloudDeadlineError(NxcloudApiError):
    """The call's ``deadline`` came before it succeeded or used up its attempts.

    Nothing says the request is wrong: stop cleanly and try again later. ``attempts`` is
    the number of requests made (0 when there was no time for one), ``reason`` the last
    failure (``None`` if none), ``code`` the last failure's NXCLOUD code, if any.
    """

    def __init__(self, message: str, code: int | None = None, *, attempts: int = 0, reason: str | None = None) -> None:
        super().__init__(message, code)
        self.attempts = attempts
        self.reason = reason


class NxcloudRateLimitedError(NxcloudDeadlineError):
    """NXCLOUD asked to come back later than a run should wait (``Retry-After``)."""


class _Retry(Exception):
    def __init__(
        self, reason: str, code: int | None = None, *, retry_after: float | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.retry_after = retry_after
        self.timed_out = timed_out


def retry_after_seconds(value: str | None, now_ms: int, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, in ``[0, cap]``; None if unreadable.

    ``value`` is delta-seconds (``"120"``) or an HTTP-date, read against ``now_ms``
    (epoch milliseconds); a date without a zone is taken as UTC.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    seconds: float
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now_ms / 1000
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)


class NxcloudClient:
    def __init__(
        self,
        base_url: str,
        access_key: str,
        access_secret: str,
        *,
        algorithm: str = "md5",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_retry_after: float = 60.0,
        min_attempt_seconds: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_retry_after < 0 or min_attempt_seconds < 0:
            raise ValueError("max_retry_after and min_attempt_seconds must not be negative")
        self.base_url = base_url.rstrip("/")
        self._access_key = access_key
        self._access_secret = access_secret
        self._algorithm = algorithm
        self._timeout = (connect_timeout, read_timeout)
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._max_retry_after = max_retry_after
        self._min_attempt = min_attempt_seconds
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock_ms = clock_ms
        self._monotonic = monotonic

    def __repr__(self) -> str:  # never show the secret
        return f"NxcloudClient(base_url={self.base_url!r}, access_key={self._access_key!r})"

    def deadline_in(self, seconds: float) -> float:
        """The ``deadline`` that is ``seconds`` from now on this client's monotonic clock."""
        return self._monotonic() + seconds

    def call(
        self, path: str, *, action: str, biz_type: str, payload: dict[str, Any], deadline: float | None = None
    ) -> Any:
        """POST a signed JSON request; the response's ``data`` when ``code`` is 0.

        ``deadline`` (optional) is a time on the client's monotonic clock, see
        :meth:`deadline_in`; past it the call raises :class:`NxcloudDeadlineError`.
        """
        # Serialised once: the signed text must be the bytes sent.
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        last: _Retry | None = None
        for attempt in range(1, self._max_attempts + 1):
            timeout = self._attempt_timeout(deadline)
            if timeout is None:
                raise self._out_of_time(path, attempt - 1, last)
            try:
                return self._attempt(path, action, biz_type, body, timeout)
            except _Retry as retry:
                last = retry
                if retry.timed_out and timeout != self._timeout:
                    raise self._out_of_time(path, attempt, last) from retry  # cut short by the deadline
                if attempt == self._max_attempts:
                    break
                wait = self._backoff * 2 ** (attempt - 1) if retry.retry_after is None else retry.retry_after
                if deadline is not None and self._monotonic() + wait + self._min_attempt > deadline:
                    raise self._out_of_time(path, attempt, last) from retry
                self._sleep(wait)
        assert last is not None
        raise NxcloudApiError(f"{path} failed after {self._max_attempts} attempts: {last}", last.code)

    def _attempt_timeout(self, deadline: float | None) -> tuple[float, float] | None:
        """(connect, read) timeouts for an attempt starting now; None when out of time."""
        if deadline is None:
            return self._timeout
        left = deadline - self._monotonic()
        if left <= 0 or left < self._min_attempt:
            return None
        return (min(self._timeout[0], left), min(self._timeout[1], left))

    def _out_of_time(self, path: str, attempts: int, last: _Retry | None) -> NxcloudDeadlineError:
        if last is None:
            message = f"{path}: out of time before the first attempt"
        else:
            message = f"{path}: out of time after {attempts} attempt(s); last failure: {last}"
        return NxcloudDeadlineError(
            message, last.code if last else None, attempts=attempts, reason=str(last) if last else None
        )

    def _attempt(self, path: str, action: str, biz_type: str, body: str, timeout: tuple[float, float]) -> Any:
        headers = signed_headers(
            self._access_key,
            self._access_secret,
            action=action,
            biz_type=biz_type,
            body=body,
            ts_ms=self._clock_ms(),
            algorithm=self._algorithm,
        )
        headers["Content-Type"] = "application/json"
        try:
            response = self._session.post(
                self.base_url + path, data=body.encode("utf-8"), headers=headers, timeout=timeout
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}", timed_out=isinstance(exc, requests.Timeout)) from exc

        def retry(reason: str, code: int | None = None) -> _Retry:
            header = response.headers.get("Retry-After")
            wait = None if header is None else retry_after_seconds(header, self._clock_ms(), math.inf)
            if wait is not None and wait > self._max_retry_after:
                # NXCLOUD asks for longer than a run should sleep: stop now, come back later.
                raise NxcloudRateLimitedError(
                    f"{path}: NXCLOUD asks to retry in {wait:.0f} s ({reason}); the next run goes on",
                    code,
                    attempts=1,
                    reason=reason,
                )
            return _Retry(reason, code, retry_after=wait)

        if response.status_code >= 500:
            raise retry(f"HTTP {response.status_code}")
        if response.status_code == RATE_LIMITED:
            raise retry(f"HTTP {RATE_LIMITED} (rate limited)", RATE_LIMITED)
        try:
            # Exactly, as pushes are read: a row's numbers and repeated fields stay as sent.
            answer = nxjson.loads(response.content.decode("utf-8"), duplicates="keep", constants=True)
        except (ValueError, RecursionError) as exc:
            if response.status_code >= 400:
                raise NxcloudApiError(f"HTTP {response.status_code} from {path}") from exc
            raise retry(f"HTTP {response.status_code} with a body that is not JSON") from exc
        if not isinstance(answer, dict):
            raise retry("response is not a JSON object")
        code: Any = answer.get("code")
        message = str(answer.get("msg") or "")
        if code == 0 and response.status_code < 400:
            return answer.get("data")
        try:
            code = int(code)
        except (TypeError, ValueError):
            raise NxcloudApiError(f"HTTP {response.status_code}, no code: {message!r}") from None
        if code in _RETRIED_CODES:
            raise retry(f"NXCLOUD code {code}: {message}", code)
        if code in _CONFIG_CODES:
            raise NxcloudConfigError(
                f"NXCLOUD refused the request with code {code} ({_CONFIG_CODES[code]}): {message}. "
                "Check the access key, the secret and the API base URL.",
                code,
            )
        raise NxcloudApiError(f"NXCLOUD code {code}: {message}", code)

    def cdr_page(
        self,
        start_s: int,
        end_s: int,
        page: int,
        size: int = CDR_PAGE_SIZE,
        *,
        direction: str = "all",
        deadline: float | None = None,
    ) -> list[Any]:
        """One page of call-centre records with call time in the window (epoch seconds).

        ``direction`` is ``all``, ``inbound``, ``outbound`` or ``aicc``; the API's filter
        numbers are one more than the records' (inbound is 1 here, 0 in a record).
        NXCLOUD gives no total: the last page is the one with fewer than ``size`` rows.
        A ``data`` of ``{}`` or ``null`` is read as an empty page. ``deadline`` is as in
        :meth:`call`: :class:`NxcloudDeadlineError` when the page cannot be had in time.
        """
        payload: dict[str, Any] = {"startTime": start_s, "endTime": end_s, "page": page, "size": size}
        if direction != "all":
            payload["direction"] = CDR_DIRECTION_FILTER[direction]
        data = self.call(CDR_PAGE_PATH, action=CDR_ACTION, biz_type=CDR_BIZ_TYPE, payload=payload, deadline=deadline)
        if data is None or data == {}:
            return []
        if not isinstance(data, list):
            raise NxcloudApiError(f"CDR page {page}: data is not a list of records")
        # A row that is not a record is the sync's to quarantine, not a reason to fail the page.
        return data
