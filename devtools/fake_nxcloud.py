"""A stand-in for NXCLOUD's call-centre CDR page API on loopback.

It checks the signature and the timestamp of every request as NXCLOUD does, serves
pages of a generated (or given) record set, and can inject the failures NXCLOUD is
known for: HTTP 5xx, codes 88/99/1003/1004/1005, rate limiting (HTTP 429 with a text or
a JSON body, or code 429 in an HTTP 200), a hang past the client's timeout, a body that
is not JSON, ``data: {}``, a dropped connection.
Records are served as given, bad ones included (no ``callId``, unreadable fields); one
whose ``startTime`` is not a number of milliseconds is served in every window.
Run it by hand: ``python -m devtools.fake_nxcloud --port 8089 --records 500``.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nxcloud_cdr.nxcloud_api import CDR_PAGE_PATH
from nxcloud_cdr.signing import verify

FAULTS = (
    "http500",
    "http429",  # HTTP 429, text body, ``Retry-After: <retry_after>`` (1 s unless set)
    "http429_json",  # HTTP 429, {"code": 429, "msg": "rate limited"}, no Retry-After
    "code88",
    "code99",
    "code429",  # HTTP 200, {"code": 429, "msg": "too many requests"}
    "code1003",
    "code1004",
    "code1005",
    "hang",
    "malformed",
    "data_object",
    "drop",
)
# Not secrets: the stand-in's own credentials, printed at start.
DEFAULT_ACCESS_KEY = "local-access-key"
DEFAULT_ACCESS_SECRET = "local-access-secret"  # noqa: S105


def generate_records(
    count: int, start_ms: int, span_ms: int, *, seed: int = 7, recording_base: str = "https://record.example"
) -> list[dict[str, Any]]:
    """``count`` CDR records with start times spread over ``span_ms`` from ``start_ms``,
    in the page API's shape, including fields the doc does not list."""
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    records = []
    for number in range(count):
        started = start_ms + rng.randrange(span_ms)
        answered = rng.random() < 0.7
        queue_ms = rng.randrange(500, 20_000)
        ring_s = rng.randrange(0, 20)
        talk_s = rng.randrange(1, 600) if answered else 0
        direction = rng.choice([0, 0, 1, 2])
        record: dict[str, Any] = {
            "agentName": f"NX0944500{rng.randrange(10000):04d}" if answered else None,
            "agentNickName": "Sample Agent" if answered else None,
            "answered": answered,
            "answerTime": started + queue_ms + ring_s * 1000 if answered else 0,
            "callDuration": talk_s,
            "callee": f"8523575{rng.randrange(10000):04d}",
            "caller": f"8521523{rng.randrange(10000):04d}",
            "callId": f"{number:08x}{rng.getrandbits(64):016x}c009",
            "direction": direction,
            "dtmfKeys": None,
            "endTime": started + queue_ms + (ring_s + talk_s) * 1000,
            "hangupBy": rng.choice([0, 1, 2]),
            "hangupCode": 1001 if answered else 1103,
            "callStatus": "Normal termination" if answered else "Missed call",
            "hangupReason": "Agent hung up" if answered else "User abandoned the queue",
            "inQueueTime": started + 20,
            "leaveMsgUrl": None,
            "orderId": "",
            "other": None,
            "intent": None,
            "outQueueTime": started + 20 + queue_ms,
            "queueDuration": queue_ms if rng.random() < 0.5 else queue_ms // 1000,
            "recordUrl": f"{recording_base}/{number}.mp3" if answered else None,
            "ringDuration": ring_s,
            "ringTime": started + 20 + queue_ms,
            "startTime": started,
            "taskId": "" if direction != 2 else f"task-{number % 5}",
            "totalCustomerPrice": round(rng.random() / 10, 3),
        }
        if rng.random() < 0.2:
            record.update(lineIp="10.0.0.1", mos=4.2, termSipCode=200)
        records.append(record)
    return records


@dataclass
class FakeNxcloud:
    records: list[dict[str, Any]]
    access_key: str = DEFAULT_ACCESS_KEY
    access_secret: str = DEFAULT_ACCESS_SECRET
    host: str = "127.0.0.1"
    port: int = 0
    hang_seconds: float = 2.0
    retry_after: str | None = "1"  # the Retry-After header of the ``http429`` fault (None: no header)
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    faults: deque[str] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def inject(self, *faults: str) -> None:
        """Failures for the next requests, one each, in order."""
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")
            self.faults.append(fault)

    def start(self) -> FakeNxcloud:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
                status, answer, *extra = fake.answer(self.path, dict(self.headers.items()), body)
                if answer is None:  # dropped connection
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                headers = {"Content-Type": "application/json"} | (extra[0] if extra else {})
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a hang past its timeout)

        self._stopping.clear()
        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()  # quick stop()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends hangs at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeNxcloud:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answer(self, path: str, headers: dict[str, str], body: str) -> tuple[int, Any, dict[str, str]]:
        """(HTTP status, body as JSON-able or bytes or None to drop, extra headers).

        A replacement (``monkeypatch``) may return just (status, body).
        """
        status, answer, *extra = self._answer(path, headers, body)
        return status, answer, extra[0] if extra else {}

    def _answer(self, path: str, headers: dict[str, str], body: str) -> tuple[Any, ...]:
        signed = verify(headers, body, self.access_secret)
        lowered = {name.lower(): value for name, value in headers.items()}
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
            self.requests.append({"path": path, "body": body, "signed": signed, "fault": fault})
        if fault == "hang":
            self._stopping.wait(self.hang_seconds)
        elif fault is not None and fault != "data_object":
            return self._fault_reply(fault)
        if path != CDR_PAGE_PATH:
            return 404, {"code": 404, "msg": "not found"}
        if lowered.get("accesskey") != self.access_key or not signed:
            return 200, {"code": 1003, "msg": "invalid signature", "data": {}}
        if lowered.get("biztype") != "8" or lowered.get("action") != "cc":
            return 200, {"code": 1002, "msg": "bizType must be 8 and action cc", "data": {}}
        if abs(self.clock_ms() - int(lowered.get("ts") or 0)) > 60_000:
            return 200, {"code": 1004, "msg": "timestamp expired", "data": {}}
        request = json.loads(body)
        if fault == "data_object":
            return 200, {"code": 0, "msg": "Request succeeded", "data": {}}
        return 200, {"reqId": "fake", "code": 0, "msg": "Request succeeded", "data": self.page(request)}

    def _fault_reply(self, fault: str) -> tuple[Any, ...]:
        if fault == "drop":
            return 200, None
        if fault == "http500":
            return 500, b"<html>Internal Server Error</html>"
        if fault == "http429":
            extra = {"Content-Type": "text/plain"}
            if self.retry_after is not None:
                extra["Retry-After"] = self.retry_after
            return 429, b"Too Many Requests", extra
        if fault == "http429_json":
            return 429, {"code": 429, "msg": "rate limited"}
        if fault == "code429":
            return 200, {"code": 429, "msg": "too many requests"}
        if fault == "malformed":
            return 200, b'{"code": 0, "data": [ {"callId": '
        code = int(fault.removeprefix("code"))
        return 200, {"code": code, "msg": f"injected {code}", "data": {}}

    @staticmethod
    def page_request(request: dict[str, Any]) -> tuple[int, int, int, int] | None:
        """(start s, end s, page, size) of a page request; None when it is not one."""
        try:
            return (
                int(request["startTime"]),
                int(request["endTime"]),
                int(request["page"]),
                min(int(request["size"]), 100),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def page(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        asked = self.page_request(request)
        if asked is None:
            return []
        start_s, end_s, page, size = asked
        # Inclusive bounds on call start, in seconds, oldest first; a record without a
        # readable start is in every window (first), so that bad rows can be served.
        timed = [(_start_ms(r), r) for r in self.records]
        matching = sorted(
            ((ms, r) for ms, r in timed if ms is None or start_s <= ms // 1000 <= end_s),
            key=lambda pair: (-1 if pair[0] is None else pair[0], str(pair[1].get("callId", ""))),
        )
        return [r for _, r in matching[(page - 1) * size : page * size]]


def _start_ms(record: dict[str, Any]) -> int | None:
    try:
        return int(record["startTime"])
    except (KeyError, TypeError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--days", type=int, default=2, help="records spread over the last N days")
    arguments = parser.parse_args()
    from .local_stack import busy_port  # noqa: PLC0415 - it imports this module

    busy = busy_port({"the NXCLOUD stand-in": arguments.port})
    if busy:
        raise SystemExit(busy.replace("local stack: ", "fake NXCLOUD: ", 1))
    now = int(time.time() * 1000)
    span = arguments.days * 86_400_000
    fake = FakeNxcloud(generate_records(arguments.records, now - span, span), port=arguments.port).start()
    print(f"fake NXCLOUD CDR API on {fake.base_url} with {arguments.records} records")  # noqa: T201
    print(f"access key {fake.access_key!r}, access secret {fake.access_secret!r} (local values)")  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
