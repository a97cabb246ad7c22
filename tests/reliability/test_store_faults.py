"""Store faults during thousands of pushes, each retried as NXCLOUD retries it.

A simulated NXCLOUD sends every push to the real handlers (in process, as Lambda runs
them) on DynamoDB Local and, while the answer is not 200, sends it again one (virtual)
minute later, at most 60 times (PNS; call-centre reports: every 30 minutes, 3 times);
retries interleave with new pushes. Faults are injected under the functions' own
botocore client, one decision per HTTP attempt (``before-send``), so that botocore's
retries and the write rule both meet them: throttling, 500s, read timeouts before the
request left and after the write was applied (the answer lost), refused connections,
transaction conflicts, and DynamoDB Local itself stopped and started again on its files.

After every 200 a consistent read on the engine (not through the faulty client) checks
that the copy just acknowledged is stored. At the end, with faults off: every record is
in the table once, its most complete copy shown and every other copy kept as a
version; no push was answered 500; every push got its 200 within NXCLOUD's retries.

botocore's backoff sleeps are compressed by ``TIME_SCALE`` so that thousands of pushes
fit in a minute; the time each invocation would have taken in Lambda (its real time,
plus the read timeouts it waited, plus the uncompressed backoff) is reported, and
``test_hung_store_is_answered_503_before_the_function_times_out`` measures it for real.
"""

from __future__ import annotations

import heapq
import json
import random
import socket
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.retries.standard import ExponentialBackoff
from nxcloud_cdr import receiver
from nxcloud_cdr.dynamodb_types import deserialise
from nxcloud_cdr.items import readable

from devtools.dynamodb_local import DynamoDBLocal
from devtools.template import create_tables, function_timeout, load_template
from tests.conftest import LambdaContext, body_of, event_with_body

pytestmark = pytest.mark.dynamodb_local

# NXCLOUD sends a push not answered 200 again: PNS pushes every minute for 60 minutes,
# call-centre reports every 30 minutes, 3 times (docs/guarantees.md).
RETRIES = {  # kind: (seconds between sends, retries after the first send)
    "pns_call_result": (60.0, 60),
    "pns_binding_not_exist": (60.0, 60),
    "cc_report": (1800.0, 3),
}
# How long (virtual seconds from the first push) the store is degraded: random faults
# at the rates each test gives, on every HTTP attempt. Pushes arrive during the first
# few minutes; PNS retries meet the faults again and again, call-centre retries (every
# 30 minutes) meet a store that has recovered, as after a real incident.
DEGRADED_FOR_S = 600.0
# botocore's backoff sleeps, compressed (the uncompressed time is still accounted).
TIME_SCALE = 0.01
KINDS = {
    "pns_call_result": ("PnsCallResultFunction", "pns-call-result.json"),
    "pns_binding_not_exist": ("PnsBindingNotExistFunction", "pns-binding-not-exist.json"),
    "cc_report": ("CcReportFunction", "cc-report.json"),
}
WRITES = ("PutItem", "TransactWriteItems", "UpdateItem")

# Fault types, one per HTTP attempt.
THROUGHPUT = "ProvisionedThroughputExceededException"
THROTTLING = "ThrottlingException"
INTERNAL = "InternalServerError (500)"
TIMEOUT = "read timeout, request not sent"
LOST = "read timeout after the write was applied (answer lost)"
REFUSED = "connection refused"
CONFLICT = "TransactionCanceled: TransactionConflict"
TX_THROTTLED = "TransactionCanceled: ThrottlingError"
ENGINE_STOPPED = "DynamoDB Local stopped mid-request (write applied, connection closed)"


# -- records and pushes ------------------------------------------------------------------


@dataclass
class Record:
    kind: str
    nxcloud_id: str
    copies: list[dict[str, Any]]  # distinct copies, each more complete than the one before

    @property
    def key(self) -> tuple[str, str]:
        return (f"ID#{self.nxcloud_id}", self.kind)


@dataclass
class Push:
    number: int
    kind: str
    body: str
    record: Record | None  # None: a body that can never become a record
    payload: Any = None
    statuses: list[int] = field(default_factory=list)
    met: list[list[str]] = field(default_factory=list)  # per send: the faults it met


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _local_time(rng: random.Random, offset_s: int = 0, base: int = 0) -> tuple[int, str]:
    moment = base or 1_700_000_000 + rng.randrange(90 * 86_400)
    moment += offset_s
    return moment, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment + 8 * 3600))


def pns_call_result(rng: random.Random, number: int) -> Record:
    call_id = str(1_800_000_000_000_000_000 + number)
    start = 1_700_000_000 + rng.randrange(90 * 86_400)
    duration = rng.randrange(1, 900)
    first = {
        "id": number,
        "businessId": "reliability",
        "customerBindId": str(rng.randrange(1, 10**6)),
        "bindId": uuid.UUID(int=rng.getrandbits(128)).hex,
        "callId": call_id,
        "did": "852" + _digits(rng, 8),
        "caller": "852" + _digits(rng, 8),
        "callee": "852" + _digits(rng, 8),
        "callStatus": 1,
        "callStatusMsg": "",
        "duration": 0,
        "startAt": start,
        "answerAt": 0,
        "hangupAt": start + duration + 2,
        "hangupCause": "",
        "hangupCode": 0,
        "hangup": rng.choice([0, 1]),
        "recordFile": "",
    }
    answered = first | {"answerAt": start + 2, "duration": duration}
    recorded = answered | {"recordFile": f"https://remote.record.nxcloud.com/pns/{uuid.UUID(int=number)}.mp3"}
    return Record("pns_call_result", call_id, [first, answered, recorded])


def pns_binding_not_exist(rng: random.Random, number: int) -> Record:
    request_id = str(1_900_000_000_000_000_000 + number)
    _, occurred = _local_time(rng)
    first: dict[str, Any] = {
        "code": 10013,
        "msg": "",
        "requestId": request_id,
        "data": {
            "action": "queryAXB",
            "requestParams": {"caller": "", "did": "852" + _digits(rng, 8)},
            "occurrenceTime": occurred,
        },
    }
    with_message = first | {"msg": "binding not exist"}
    with_caller = with_message | {
        "data": first["data"] | {"requestParams": first["data"]["requestParams"] | {"caller": "852" + _digits(rng, 7)}}
    }
    return Record("pns_binding_not_exist", request_id, [first, with_message, with_caller])


def cc_report(rng: random.Random, number: int) -> Record:
    session_id = uuid.UUID(int=rng.getrandbits(128)).hex
    start, started = _local_time(rng)
    duration = rng.randrange(1, 900)
    first = {
        "callId": "",
        "callSessionId": session_id,
        "called": "852" + _digits(rng, 8),
        "calledInfo": "Hong Kong Mobile",
        "caller": "852" + _digits(rng, 8),
        "ccode": "852",
        "ccodeName": "Hong Kong",
        "agentName": f"Agent {number % 50}",
        "agentGroupName": "After-sales",
        "agentAccount": "NX" + _digits(rng, 12),
        "callDuration": duration,
        "callType": 3,
        "hangupCode": "200",
        "hangupReason": 1,
        "hangingDirection": 0,
        "labels": [],
        "baseCost": "0.0300",
        "cost": "0.0350",
        "remark": "",
        "callStartTime": started,
        "answerTime": _local_time(rng, 3, start)[1],
        "callEndTime": _local_time(rng, 3 + duration, start)[1],
        "voiceUrl": "",
    }
    remarked = first | {"remark": f"call back {number}"}
    recorded = remarked | {
        "labels": ["Intended customers"],
        "voiceUrl": f"https://record.nxcloud.com/cc/{session_id}.mp3",
    }
    return Record("cc_report", session_id, [first, remarked, recorded])


def _as_sent(rng: random.Random, payload: Any) -> str:
    """A body as NXCLOUD may format it: white space and key order vary, content not."""
    return json.dumps(payload, indent=rng.choice([None, 2, 4]), sort_keys=rng.random() < 0.3, ensure_ascii=False)


BAD_BODIES = [
    ("pns_call_result", "{not json"),
    ("pns_binding_not_exist", json.dumps({"code": 10013, "requestId": "", "data": {}})),
    ("cc_report", "[1, 2, 3]"),
]


def generate(seed: int, records: int, *, bad_bodies: bool = False) -> tuple[list[Record], list[Push]]:
    """Records of the three kinds (65 % one copy, 25 % a corrected copy, 10 % two),
    one push per copy, NXCLOUD's own re-sends of 15 % of them (some re-formatted),
    shuffled so that copies of one record arrive in any order, near or far apart."""
    rng = random.Random(seed)
    makers = [pns_call_result, pns_binding_not_exist, cc_report]
    made: list[Record] = []
    pushes: list[Push] = []
    for number in range(records):
        record = makers[number % 3](rng, seed * 1_000_000 + number)
        record.copies = record.copies[: rng.choices([1, 2, 3], weights=[65, 25, 10])[0]]
        made.append(record)
        for payload in record.copies:
            pushes.append(Push(0, record.kind, _as_sent(rng, payload), record, payload))
        if rng.random() < 0.15:
            payload = rng.choice(record.copies)
            pushes.append(Push(0, record.kind, _as_sent(rng, payload), record, payload))
    if bad_bodies:
        pushes += [Push(0, kind, body, None) for kind, body in BAD_BODIES]
    rng.shuffle(pushes)
    for number, push in enumerate(pushes):
        push.number = number
    return made, pushes


# -- faults ------------------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _error(request: AWSPreparedRequest, status: int, type_: str, message: str, **extra: Any) -> AWSResponse:
    body = json.dumps({"__type": type_, "message": message, **extra}).encode()
    headers = HTTPHeaders()
    headers["content-type"] = "application/x-amz-json-1.0"
    headers["x-amzn-requestid"] = uuid.uuid4().hex
    return AWSResponse(request.url, status, headers, _Body(body))


def _cancelled(request: AWSPreparedRequest, reasons: list[str]) -> AWSResponse:
    return _error(
        request,
        400,
        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(reasons)}]",
        CancellationReasons=[{"Code": reason} for reason in reasons],
    )


class StoreFaults:
    """Faults under the functions' botocore client, decided per HTTP attempt."""

    def __init__(self, client: Any, seed: int, rates: dict[str, float], transaction_rates: dict[str, float]) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.rates = rates
        self.transaction_rates = transaction_rates
        self.enabled = True
        self.storm = False  # every attempt throttled
        self.stop_engine_on_next_write: DynamoDBLocal | None = None
        self.injected: Counter[str] = Counter()
        self.by_operation: Counter[str] = Counter()
        self.applied_then_lost = 0  # lost answers whose write DynamoDB did apply (200)
        self.attempts = 0
        self.met: list[str] = []  # this invocation's faults, as "<operation>: <fault>"
        self.charged_s = 0.0  # this invocation's waits that Lambda would count
        self.read_timeout_s = float(client.meta.config.read_timeout)
        self._http = urllib3.PoolManager(maxsize=4)
        client.meta.events.register("before-send.dynamodb", self._before_send)

    def close(self) -> None:
        self.client.meta.events.unregister("before-send.dynamodb", self._before_send)
        self._http.clear()

    def _deliver(self, request: AWSPreparedRequest) -> int:
        """Send the request to DynamoDB for real (its write is applied)."""
        headers = {
            str(name): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        answer = self._http.urlopen(
            request.method, request.url, body=request.body, headers=headers, retries=False, timeout=10.0
        )
        return int(answer.status)

    def _choose(self, operation: str) -> str | None:
        if self.storm:
            return THROTTLING
        rates = self.rates | (self.transaction_rates if operation == "TransactWriteItems" else {})
        draw = self.rng.random()
        for fault, rate in rates.items():
            if draw < rate:
                return fault
            draw -= rate
        return None

    def _before_send(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        self.attempts += 1
        engine = self.stop_engine_on_next_write
        if engine is not None and operation in WRITES:
            self.stop_engine_on_next_write = None
            self._count(ENGINE_STOPPED, operation)
            self.applied_then_lost += self._deliver(request) == 200
            engine.stop()
            raise ConnectionClosedError(endpoint_url=request.url)
        if not self.enabled:
            return None
        fault = self._choose(operation)
        if fault is None:
            return None
        self._count(fault, operation)
        if fault == THROUGHPUT:
            return _error(
                request,
                400,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            )
        if fault == THROTTLING:
            return _error(request, 400, "com.amazon.coral.availability#ThrottlingException", "Rate of requests exceeds")
        if fault == INTERNAL:
            return _error(request, 500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal error")
        if fault == CONFLICT:
            return _cancelled(request, ["TransactionConflict", "None"])
        if fault == TX_THROTTLED:
            return _cancelled(request, ["None", "ThrottlingError"])
        if fault == REFUSED:
            raise EndpointConnectionError(endpoint_url=request.url, error=ConnectionRefusedError(111, "refused"))
        if fault == LOST:
            self.applied_then_lost += self._deliver(request) == 200
        self.charged_s += self.read_timeout_s  # TIMEOUT and LOST: the client waited read_timeout
        raise ReadTimeoutError(endpoint_url=request.url, error="injected")

    def _count(self, fault: str, operation: str) -> None:
        self.injected[fault] += 1
        self.by_operation[operation] += 1
        self.met.append(f"{operation}: {fault}")


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., StoreFaults]]:
    """``faults(seed, rates, transaction_rates)``: a StoreFaults on the functions' client
    (built now, from the environment the test set), with botocore's backoff compressed."""
    made: list[StoreFaults] = []
    real_delay = ExponentialBackoff.delay_amount

    def compressed(self: ExponentialBackoff, context: Any) -> float:
        delay = float(real_delay(self, context))
        for injector in made:
            injector.charged_s += delay * (1 - TIME_SCALE)
        return delay * TIME_SCALE

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", compressed)

    def make(seed: int, rates: dict[str, float], transaction_rates: dict[str, float] | None = None) -> StoreFaults:
        receiver.reset_runtime()
        runtime = receiver.runtime()
        assert runtime.writer._client is runtime.store._client
        injector = StoreFaults(runtime.writer._client, seed, rates, transaction_rates or {})
        made.append(injector)
        return injector

    yield make
    for injector in made:
        injector.close()


# -- the simulated NXCLOUD and the checks --------------------------------------------------


def _partition(client: Any, table: str, pk: str) -> list[dict[str, Any]]:
    response = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )
    return list(response["Items"])


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**arguments)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False)


class Nxcloud:
    """Sends pushes as NXCLOUD does: in arrival order, each one not answered 200 sent
    again later by its kind's ``RETRIES`` policy (virtual seconds), the retries
    interleaved with newer pushes. ``at(clock)`` runs before each send."""

    def __init__(
        self,
        invoke: Callable[..., dict[str, Any]],
        checker: Any,
        table: str,
        faults: StoreFaults,
        *,
        at: Callable[[float], None] = lambda _clock: None,
    ) -> None:
        self.invoke = invoke
        self.checker = checker
        self.table = table
        self.faults = faults
        self.at = at
        self.sends = 0
        self.crashes: list[str] = []
        self.false_acks: list[str] = []
        self.lambda_seconds: list[float] = []
        self.timeout_s = function_timeout("PnsCallResultFunction", load_template())
        self.answers: list[tuple[float, int]] = []  # (virtual time sent, status)
        self.deferred: list[tuple[Push, dict[str, Any]]] = []  # 200s answered while the engine was down

    def run(self, pushes: list[Push], spacing_s: float) -> None:
        queue = [(push.number * spacing_s, push.number, push) for push in pushes]
        heapq.heapify(queue)
        sequence = len(queue)
        while queue:
            due, _, push = heapq.heappop(queue)
            self.at(due)
            push.met.append([])
            status = self.send(push)
            push.statuses.append(status)
            self.answers.append((due, status))
            every_s, retries = RETRIES[push.kind]
            if status != 200 and len(push.statuses) <= retries:
                sequence += 1
                heapq.heappush(queue, (due + every_s, sequence, push))

    def send(self, push: Push) -> int:
        function, event_file = KINDS[push.kind]
        event = event_with_body(event_file, push.body)
        self.sends += 1
        self.faults.charged_s = 0.0
        self.faults.met = push.met[-1] if push.met else []
        started = time.perf_counter()
        limit_s = self.timeout_s
        faults = self.faults

        class Context(LambdaContext):
            """Lambda's clock for this invocation: wall time and the backoff the
            compressed retries would have slept."""

            def get_remaining_time_in_millis(self) -> int:
                return int((limit_s - (time.perf_counter() - started + faults.charged_s)) * 1000)

        try:
            response = self.invoke(function, event, Context())
        except Exception:  # what API Gateway answers when the function fails
            self.crashes.append(f"push {push.number}: {traceback.format_exc()}")
            return 500
        self.lambda_seconds.append(time.perf_counter() - started + self.faults.charged_s)
        status = int(response["statusCode"])
        if status == 200:
            self._check_kept(push, body_of(response))
        return status

    def _check_kept(self, push: Push, answer: dict[str, Any]) -> None:
        """Right after a 200: the copy acknowledged is in the table (consistent read on
        the engine, not through the faulty client), shown or kept as a version."""
        if push.record is None:
            self.false_acks.append(f"push {push.number}: a bad body was answered 200: {answer}")
            return
        pk, kind = push.record.key
        try:
            partition = _partition(self.checker, self.table, pk)
        except (BotoCoreError, ClientError):
            # A 200 while DynamoDB Local is down: checked on its files as soon as it
            # is back, before any other push is sent (nothing else could write it).
            self.deferred.append((push, answer))
            return
        kept = [
            json.loads(_raw_of(item))
            for item in partition
            if item["sk"]["S"] == kind or item["sk"]["S"].startswith(f"v#{kind}#")
        ]
        if answer.get("ok") is not True or answer.get("id") != push.record.nxcloud_id:
            self.false_acks.append(f"push {push.number}: unexpected 200 body {answer}")
        if push.payload not in kept:
            self.false_acks.append(
                f"push {push.number} ({pk} {kind}) answered 200 {answer.get('outcome')!r} but its copy is not "
                f"in the table ({len(kept)} copies there)"
            )


@dataclass
class TableCheck:
    records: int  # main items (sk without the "v#" prefix)
    versions: int  # version items (sk "v#<kind>#<hash>")
    problems: dict[str, list[str]]


def check_deferred(nxcloud: Nxcloud) -> None:
    deferred, nxcloud.deferred = nxcloud.deferred, []
    for push, answer in deferred:
        nxcloud._check_kept(push, answer)
    assert nxcloud.deferred == []


def _raw_of(item: dict[str, Any]) -> str:
    """The body of a stored copy as received, however the item keeps it (text, or
    compressed when that saves a write unit)."""
    return str(readable(deserialise(item))["raw"])


def check_table(checker: Any, table: str, records: list[Record]) -> TableCheck:
    """Every record exactly once: one main item per record (its key is the table's
    key, so never two) and no main item that is not one of the records; the merge of
    its copies shown (each copy here is more complete than the one before, so the
    merge holds what the last one holds); every copy kept once as a version when there
    are two or more; nothing else."""
    main: dict[tuple[str, str], dict[str, Any]] = {}
    versions: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in _scan(checker, table):
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if sk.startswith("v#"):
            versions[(pk, sk.split("#")[1])].append(_canonical(json.loads(_raw_of(item))))
        else:
            main[(pk, sk)] = item
    expected = {record.key: record for record in records}
    problems: dict[str, list[str]] = {
        "lost": [f"{key}" for key in expected if key not in main],
        "unexpected": [f"{key}" for key in main if key not in expected],
        "wrong copy shown": [],
        "versions differ": [f"{key}: orphan versions" for key in versions if key not in expected],
    }
    for key, record in expected.items():
        if key not in main:
            continue
        if json.loads(_raw_of(main[key])) != record.copies[-1]:
            problems["wrong copy shown"].append(f"{key}")
        kept = record.copies if len(record.copies) > 1 else []
        if sorted(versions.get(key, [])) != sorted(_canonical(copy) for copy in kept):
            problems["versions differ"].append(f"{key}: {len(versions.get(key, []))} kept")
    return TableCheck(
        len(main),
        sum(len(kept) for kept in versions.values()),
        {name: found for name, found in problems.items() if found},
    )


@dataclass
class Tables:
    client: Any
    records: str
    quarantine: str


def _tables_on(endpoint: str, push_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Tables:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 2}))
    create_tables(
        client, {"CallRecordsTable": push_env["TABLE_NAME"], "QuarantineTable": push_env["QUARANTINE_TABLE_NAME"]}
    )
    return Tables(client, push_env["TABLE_NAME"], push_env["QUARANTINE_TABLE_NAME"])


def report(
    figures: Callable[[str, Any], None],
    pushes: list[Push],
    nxcloud: Nxcloud,
    faults: StoreFaults,
    records: list[Record],
    table: TableCheck,
) -> None:
    statuses = Counter(status for push in pushes for status in push.statuses)
    stored = sum(1 for push in pushes if push.record is not None)
    figures("pushes sent (distinct)", len(pushes))
    figures("HTTP requests incl. NXCLOUD retries", nxcloud.sends)
    figures("NXCLOUD retries", nxcloud.sends - len(pushes))
    figures("answers by status", dict(sorted(statuses.items())))
    figures("503s", statuses[503])
    for kind, (_, retries) in RETRIES.items():
        sends = [len(push.statuses) for push in pushes if push.record is not None and push.kind == kind]
        figures(f"most sends for one {kind} push (budget {1 + retries})", max(sends, default=0))
    figures("DynamoDB HTTP attempts (functions' client)", faults.attempts)
    figures("faults injected", sum(faults.injected.values()))
    figures("faults by type", dict(faults.injected.most_common()))
    figures("faults by operation", dict(faults.by_operation.most_common()))
    figures("lost answers whose write was applied", faults.applied_then_lost)
    single = sum(
        1
        for push in pushes
        for status, met in zip(push.statuses, push.met, strict=True)
        if status == 503 and len(met) == 1 and "TransactionCanceled" not in met[0]
    )
    figures("503s after one retryable fault (botocore's retry quota spent)", single)
    figures("pushes of records (bad bodies excluded)", stored)
    figures("false acknowledgements (200 not in the table)", len(nxcloud.false_acks))
    slowest = max(nxcloud.lambda_seconds)
    figures("slowest invocation in Lambda time (s)", round(slowest, 2))
    limit = function_timeout("PnsCallResultFunction", load_template())
    over = sum(1 for seconds in nxcloud.lambda_seconds if seconds > limit)
    figures(f"invocations over the {limit} s function Timeout (Lambda time)", over)
    figures("records sent / stored", f"{len(records)} / {table.records}")
    expected_versions = sum(len(record.copies) for record in records if len(record.copies) > 1)
    figures("versions expected / stored", f"{expected_versions} / {table.versions}")
    figures("lost", len(table.problems.get("lost", [])))
    for name, found in table.problems.items():
        figures(f"PROBLEM {name}", f"{len(found)}: {found[:3]}")


def assert_promise(pushes: list[Push], nxcloud: Nxcloud) -> None:
    assert nxcloud.crashes == [], nxcloud.crashes[:3]
    assert nxcloud.false_acks == [], nxcloud.false_acks[:10]
    for push in pushes:
        allowed = {200, 503} if push.record is not None else {400, 503}
        assert set(push.statuses) <= allowed, f"push {push.number} answered {push.statuses}"
        if push.record is not None:
            assert push.statuses[-1] == 200, (
                f"push {push.number} ({push.kind}) never got 200 in {len(push.statuses)} sends; "
                f"faults met by each send: {push.met}"
            )
        else:
            assert 400 in push.statuses, f"bad body {push.number} never refused: {push.statuses}"


# -- the tests -----------------------------------------------------------------------------


def test_random_store_faults_never_lose_or_falsely_acknowledge(ddb, push_env, monkeypatch, invoke, faults, figures):
    tables = Tables(ddb, push_env["TABLE_NAME"], push_env["QUARANTINE_TABLE_NAME"])
    records, pushes = generate(seed=7, records=1200, bad_bodies=True)
    injector = faults(
        seed=11,
        rates={THROUGHPUT: 0.04, THROTTLING: 0.03, INTERNAL: 0.02, TIMEOUT: 0.02, LOST: 0.05, REFUSED: 0.02},
        transaction_rates={CONFLICT: 0.10, TX_THROTTLED: 0.04, LOST: 0.10},
    )
    storms = [(30.0, 40.0), (110.0, 114.0)]  # virtual seconds when every attempt is throttled

    def at(clock: float) -> None:
        injector.enabled = clock < DEGRADED_FOR_S
        injector.storm = any(start <= clock < end for start, end in storms)

    nxcloud = Nxcloud(invoke, tables.client, tables.records, injector, at=at)
    nxcloud.run(pushes, spacing_s=0.1)
    injector.enabled = False

    table = check_table(tables.client, tables.records, records)
    quarantined = _scan(tables.client, tables.quarantine)
    report(figures, pushes, nxcloud, injector, records, table)
    assert_promise(pushes, nxcloud)
    assert table.problems == {}
    assert len(quarantined) == len(BAD_BODIES)  # the bad bodies only: no record quarantined by a fault
    assert all("nxcloudId" not in item for item in quarantined)
    bad = [push for push in pushes if push.record is None]
    refused = {item["kind"]["S"]: int(item["attempts"]["N"]) for item in quarantined}
    figures(
        "bad bodies: NXCLOUD sends / 400s / quarantine attempts recorded",
        f"{sum(len(push.statuses) for push in bad)} / {sum(push.statuses.count(400) for push in bad)} / "
        f"{sum(refused.values())}",
    )
    for push in bad:
        assert refused[push.kind] >= push.statuses.count(400)
    assert injector.injected[LOST] > 50 and injector.applied_then_lost > 30
    assert Counter(s for push in pushes for s in push.statuses)[503] > 100  # the faults did reach NXCLOUD


@pytest.fixture(scope="module")
def engine_on_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynamoDBLocal]:
    """DynamoDB Local on files (-dbPath), so that what it stored survives a restart."""
    path: Path = tmp_path_factory.mktemp("dynamodb-files")
    with DynamoDBLocal(in_memory=False, db_path=path) as engine:
        yield engine


def test_dynamodb_local_stopped_and_restarted_mid_run(engine_on_disk, push_env, monkeypatch, invoke, faults, figures):
    engine = engine_on_disk
    tables = _tables_on(engine.endpoint, push_env, monkeypatch)
    records, pushes = generate(seed=8, records=350)
    injector = faults(seed=12, rates={THROTTLING: 0.02, LOST: 0.03, REFUSED: 0.01}, transaction_rates={LOST: 0.05})
    # (down from, up at, how it stops): between two requests, or inside one after its
    # write reached the engine (the function sees the connection close, no answer).
    outages = [(20.0, 65.0, "between requests"), (90.0, 115.0, "mid-request")]
    down: dict[str, Any] = {"since": None, "wall": 0.0, "restarts": 0}
    acknowledged_before_restart: set[int] = set()

    def at(clock: float) -> None:
        injector.enabled = clock < DEGRADED_FOR_S
        for start, end, how in outages:
            if start <= clock < end and down["since"] is None:
                down["since"] = time.monotonic()
                down["outage"] = end
                if how == "mid-request":
                    injector.stop_engine_on_next_write = engine
                else:
                    engine.stop()
        if down["since"] is not None and clock >= down["outage"]:
            if injector.stop_engine_on_next_write is not None:  # no write came: stop it now
                injector.stop_engine_on_next_write = None
                engine.stop()
            acknowledged_before_restart.update(push.number for push in pushes if 200 in push.statuses)
            engine.start()  # same port, same files
            check_deferred(nxcloud)
            down["wall"] += time.monotonic() - down["since"]
            down["restarts"] += 1
            down["since"] = None

    nxcloud = Nxcloud(invoke, tables.client, tables.records, injector, at=at)
    nxcloud.run(pushes, spacing_s=0.25)
    if down["since"] is not None:
        engine.start()
    check_deferred(nxcloud)
    injector.enabled = False

    table = check_table(tables.client, tables.records, records)
    report(figures, pushes, nxcloud, injector, records, table)
    answered_while_down = sum(
        1 for clock, status in nxcloud.answers if status == 503 and any(a <= clock < b for a, b, _ in outages)
    )
    figures("DynamoDB Local restarts", down["restarts"])
    figures("DynamoDB Local down (wall s)", round(down["wall"], 1))
    figures("503s while DynamoDB Local was down", answered_while_down)
    figures("pushes acknowledged before a restart, still there after", len(acknowledged_before_restart))
    assert down["restarts"] == 2
    assert_promise(pushes, nxcloud)
    assert table.problems == {}
    assert injector.injected[ENGINE_STOPPED] == 1
    assert _scan(tables.client, tables.quarantine) == []
    assert answered_while_down > 50  # the outages did reach NXCLOUD


def test_hung_store_is_answered_503_before_the_function_times_out(push_env, monkeypatch, invoke, figures):
    """DynamoDB that accepts connections and never answers (real read timeouts): the
    receiver must answer 503 within the function's Timeout. Past it, Lambda kills the
    invocation and API Gateway answers with an error of its own instead of the 503."""
    limit = function_timeout("PnsCallResultFunction", load_template())
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # connections complete in the kernel; nothing ever reads or answers
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{hole.getsockname()[1]}")
    receiver.reset_runtime()
    config: Any = receiver.runtime().writer._client.meta.config
    event = event_with_body("pns-call-result.json", json.dumps({"callId": "hung-1", "duration": 3}))
    answer: dict[str, Any] = {}

    def push() -> None:
        answer["response"] = invoke("PnsCallResultFunction", event)
        answer["finished"] = time.monotonic()

    sender = threading.Thread(target=push, daemon=True)
    started = time.monotonic()
    sender.start()
    sender.join(limit + 0.5)
    answered_in_time = "response" in answer and answer["finished"] - started <= limit
    hole.close()  # resets the pending connections: the function gives up quickly now
    sender.join(30)
    seconds = answer.get("finished", time.monotonic()) - started
    figures("function Timeout (s)", limit)
    figures(
        "DynamoDB client",
        f"read_timeout={config.read_timeout} s, connect_timeout={config.connect_timeout} s, {config.retries}",
    )
    figures("answered after (s)", round(seconds, 1) if answered_in_time else f"> {limit} (no answer in time)")
    assert answered_in_time, (
        f"no answer within the function's {limit} s Timeout: in Lambda the invocation is killed and API Gateway "
        "answers 500 instead of the receiver's 503 (store_unavailable is never logged or counted)"
    )
    assert answer["response"]["statusCode"] == 503
