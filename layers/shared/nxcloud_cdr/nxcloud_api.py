"""A client of NXCLOUD's signed HTTP API, with the retries its failures call for.

What is retried (with exponential backoff, a fresh ``ts`` and signature each time):
connection errors and timeouts, HTTP 5xx, a body that is not JSON, NXCLOUD codes 88
and 99 (request failed, system error) and 1004 (timestamp expired). Codes 1001-1005
otherwise are configuration errors (:class:`NxcloudConfigError`): retrying cannot fix
a wrong key. Any other non-zero code fails the call with NXCLOUD's ``msg``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

from .enums import CDR_DIRECTION_FILTER
from .signing import signed_headers

CDR_PAGE_PATH = "/saas/cc/openapi/cdr/page"
CDR_ACTION = "cc"
CDR_BIZ_TYPE = "8"
CDR_PAGE_SIZE = 100  # the API's maximum

_RETRIED_CODES = {88, 99, 1004}
_CONFIG_CODES = {
    1001: "missing common header",
    1002: "parameter error",
    1003: "invalid signature",
    1005: "insufficient permission",
}


class NxcloudApiError(Exception):
    """A call failed after its retries; the message says why."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NxcloudConfigError(NxcloudApiError):
    """NXCLOUD refused the credentials or the request shape (codes 1001-1005)."""


class _Retry(Exception):
    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


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
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._access_key = access_key
        self._access_secret = access_secret
        self._algorithm = algorithm
        self._timeout = (connect_timeout, read_timeout)
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock_ms = clock_ms

    def __repr__(self) -> str:  # never show the secret
        return f"NxcloudClient(base_url={self.base_url!r}, access_key={self._access_key!r})"

    def call(self, path: str, *, action: str, biz_type: str, payload: dict[str, Any]) -> Any:
        """POST a signed JSON request; the response's ``data`` when ``code`` is 0."""
        # Serialised once: the signed text must be the bytes sent.
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        last: _Retry | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                return self._attempt(path, action, biz_type, body)
            except _Retry as retry:
                last = retry
                if attempt < self._max_attempts:
                    self._sleep(self._backoff * 2 ** (attempt - 1))
        assert last is not None
        raise NxcloudApiError(f"{path} failed after {self._max_attempts} attempts: {last}", last.code)

    def _attempt(self, path: str, action: str, biz_type: str, body: str) -> Any:
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
                self.base_url + path, data=body.encode("utf-8"), headers=headers, timeout=self._timeout
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            if response.status_code >= 400:
                raise NxcloudApiError(f"HTTP {response.status_code} from {path}") from exc
            raise _Retry(f"HTTP {response.status_code} with a body that is not JSON") from exc
        if not isinstance(answer, dict):
            raise _Retry("response is not a JSON object")
        code: Any = answer.get("code")
        message = str(answer.get("msg") or "")
        if code == 0 and response.status_code < 400:
            return answer.get("data")
        try:
            code = int(code)
        except (TypeError, ValueError):
            raise NxcloudApiError(f"HTTP {response.status_code}, no code: {message!r}") from None
        if code in _RETRIED_CODES:
            raise _Retry(f"NXCLOUD code {code}: {message}", code)
        if code in _CONFIG_CODES:
            raise NxcloudConfigError(
                f"NXCLOUD refused the request with code {code} ({_CONFIG_CODES[code]}): {message}. "
                "Check the access key, the secret and the API base URL.",
                code,
            )
        raise NxcloudApiError(f"NXCLOUD code {code}: {message}", code)

    def cdr_page(
        self, start_s: int, end_s: int, page: int, size: int = CDR_PAGE_SIZE, *, direction: str = "all"
    ) -> list[dict[str, Any]]:
        """One page of call-centre records with call time in the window (epoch seconds).

        ``direction`` is ``all``, ``inbound``, ``outbound`` or ``aicc``; the API's filter
        numbers are one more than the records' (inbound is 1 here, 0 in a record).
        NXCLOUD gives no total: the last page is the one with fewer than ``size`` rows.
        A ``data`` of ``{}`` or ``null`` is read as an empty page.
        """
        payload: dict[str, Any] = {"startTime": start_s, "endTime": end_s, "page": page, "size": size}
        if direction != "all":
            payload["direction"] = CDR_DIRECTION_FILTER[direction]
        data = self.call(CDR_PAGE_PATH, action=CDR_ACTION, biz_type=CDR_BIZ_TYPE, payload=payload)
        if data is None or data == {}:
            return []
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise NxcloudApiError(f"CDR page {page}: data is not a list of records")
        return data
