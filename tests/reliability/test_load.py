"""Load through the local HTTP API: the stack `make local` runs (devtools.local_stack:
template routes, API Gateway events, the real handlers, DynamoDB Local), started in
this process, and 8 concurrent senders pushing thousands of records of the three kinds,
with NXCLOUD's duplicates and corrected copies of one record sent at the same moment.

Zero loss: every push answered 200, every record in the table once with its most
complete copy shown and every other copy kept as a version. Latency is reported.

The one change to the stack: its ``HTTPServer`` is swapped for a threading one. The
stock local server answers one request at a time, which would serialise the senders;
API Gateway runs as many function instances as there are requests in flight, so that
two copies of one record are written concurrently, which is what this test is about.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import boto3
import pytest
from nxcloud_cdr.kinds import PUSH_KINDS
from nxcloud_cdr.receiver import reset_runtime

from devtools import local_stack
from devtools.dynamodb_local import free_port
from devtools.local_stack import LocalStack
from tests.reliability.test_store_faults import Push, _scan, check_table, generate

pytestmark = pytest.mark.dynamodb_local

SENDERS = 8


class _ConcurrentServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


@pytest.fixture
def local_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalStack, dict[str, Any]]]:
    """The local stack in this process, on free ports, with its files in tmp_path; the
    environment it sets for the functions is put back afterwards."""
    saved = dict(os.environ)
    read_local_env = local_stack.read_local_env
    monkeypatch.setattr(local_stack, "read_local_env", lambda: read_local_env(tmp_path / "local.env"))
    monkeypatch.setattr(local_stack, "STATE_FILE", tmp_path / "stack.json")
    monkeypatch.setattr(local_stack, "HTTPServer", _ConcurrentServer)
    reset_runtime()
    stack = LocalStack(api_port=0, dynamodb_port=free_port(), nxcloud_port=None, records=0)
    serving: threading.Thread | None = None
    try:
        state = stack.start()
        serving = threading.Thread(target=stack.serve, name="local-api", daemon=True)
        serving.start()
        yield stack, state
    finally:
        if serving is not None and stack.server is not None:
            stack.server.shutdown()
            serving.join(10)
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_runtime()


def racing(pushes: list[Push], seed: int) -> list[Push]:
    """All the pushes of one record next to each other (so that the senders take them
    at the same moment), the records in random order."""
    groups: dict[Any, list[Push]] = defaultdict(list)
    for push in pushes:
        assert push.record is not None
        groups[push.record.key].append(push)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    return [push for group in order for push in group]


def post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def test_concurrent_pushes_through_the_local_api_lose_nothing(local_api, figures):
    stack, state = local_api
    records, generated = generate(seed=21, records=1300)
    # NXCLOUD's own duplicates on top: a fifth of the records once more, same moment.
    rng = random.Random(22)
    extra = [Push(0, push.kind, push.body, push.record, push.payload) for push in generated if rng.random() < 0.2]
    pushes = racing(generated + extra, seed=23)
    for number, push in enumerate(pushes):
        push.number = number
    urls = {kind: state["api"] + PUSH_KINDS[kind].path.replace("{token}", state["pushToken"]) for kind in PUSH_KINDS}
    work: Queue[Push] = Queue()
    for push in pushes:
        work.put(push)
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def sender() -> None:
        while True:
            try:
                push = work.get_nowait()
            except Empty:
                return
            started = time.perf_counter()
            try:
                status, text = post(urls[push.kind], push.body.encode())
            except OSError as exc:  # no answer at all
                status, text = 0, repr(exc)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                push.statuses.append(status)
                if status == 200 and '"ok":true' in text:
                    outcomes[text.split('"outcome":"', 1)[1].split('"', 1)[0]] += 1
                else:
                    failures.append(f"push {push.number} ({push.kind}): {status} {text[:300]}")

    started = time.perf_counter()
    threads = [threading.Thread(target=sender, name=f"sender-{n}") for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    seconds = time.perf_counter() - started

    checker = boto3.client(
        "dynamodb",
        endpoint_url=stack.dynamodb.endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # DynamoDB Local ignores credentials
    )
    tables = local_stack.TABLES
    table = check_table(checker, tables["CallRecordsTable"], records)
    quarantined = _scan(checker, tables["QuarantineTable"])
    ordered = sorted(latencies)
    figures("senders", SENDERS)
    figures("pushes", len(pushes))
    figures("distinct records", len(records))
    figures("distinct copies", sum(len(record.copies) for record in records))
    figures("records / versions stored", f"{table.records} / {table.versions}")
    figures("answers", dict(Counter(status for push in pushes for status in push.statuses)))
    figures("outcomes", dict(outcomes.most_common()))
    figures("wall time (s)", round(seconds, 1))
    figures("throughput (pushes/s)", round(len(pushes) / seconds))
    figures("latency p50 (ms)", round(statistics.median(ordered) * 1000, 1))
    figures("latency p90 (ms)", round(ordered[int(len(ordered) * 0.90)] * 1000, 1))
    figures("latency p99 (ms)", round(ordered[int(len(ordered) * 0.99)] * 1000, 1))
    figures("latency max (ms)", round(ordered[-1] * 1000, 1))
    figures("lost", len(table.problems.get("lost", [])))
    assert not any(thread.is_alive() for thread in threads)
    assert failures == [], failures[:10]
    assert all(push.statuses == [200] for push in pushes)
    assert table.problems == {}
    assert quarantined == []
    assert outcomes["stored"] == len(records)
    assert outcomes["duplicate"] > 0 and outcomes["updated"] + outcomes["kept"] > 0
