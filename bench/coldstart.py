"""Row 1: the cold start of each function as built, beside the floor.

The floor is a fresh Python 3.13 with boto3 only (as Lambda's runtime) doing
``import boto3; boto3.client("dynamodb")`` and nothing else. A function's cold start is
a fresh process of the same kind with the function's build directory and its layers on
``sys.path``, timed from just before ``import app`` to its first answer: a push function
answers its sample event (a new record each run) on DynamoDB Local, the sync answers a
scheduled event that reads one window of the stand-in NXCLOUD (20 new records) into
fresh tables, the change publisher answers a stream batch of one new call (stored by
the write rule, read from the table's stream) by putting its event and its lake row on
the loopback stand-in of EventBridge and Firehose, which must have received both.
Floor and function runs alternate, in a shuffled order each round.

Also (folded in from the former bench/import_cost.py): the import of each handler as
built beside the same build with its bytecode removed (what a layer without .pyc costs:
every cold start compiles it from source), interleaved the same way.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import lambdas
from bench.build import Function, read_build
from bench.events import PushSample, deployed_name, zone_of
from bench.publisher import insert_event, publisher_env, stand_in, stream_scenario, stream_source
from bench.report import Row, at_most, ratio
from bench.session import Session, log, scheduled_event
from devtools.fake_nxcloud import generate_records
from devtools.lake_local import LocalLake

PUSH_TARGET = 1.25
SYNC_TARGET = 1.4
SYNC_COLD_RECORDS = 20


def _spec(function: Function, mode: str, event: dict[str, Any] | None, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "mode": mode,
        "sys_path": function.sys_path,
        "module": function.handler_module,
        "function": function.handler_function,
        "context": lambdas.context_spec(name, function.memory_mb, function.timeout_s * 1000),
    }
    if event is not None:
        spec["event"] = event
    return spec


def _floor(env: dict[str, str]) -> float:
    return float(lambdas.probe({"mode": "floor"}, env, "floor")["total_ms"])


def _receiver(env: dict[str, str], table: str) -> float:
    """A minimal receiver's cold start: the floor and the write of one new item, the
    first call a push makes (its connection, signing and endpoint set-up included)."""
    item = {"pk": {"S": f"ID#minimal-{uuid.uuid4().hex}"}, "sk": {"S": "minimal"}, "raw": {"S": "{}"}}
    spec = {"mode": "receiver", "table": table, "item": item}
    return float(lambdas.probe(spec, env, "minimal receiver")["total_ms"])


@dataclass(frozen=True)
class Subject:
    """A function whose cold start is measured, and one run of it."""

    function: Function
    kind: str | None  # its push kind (it is then also measured beside a minimal receiver)
    run: Callable[[int], dict[str, Any]]  # the round (-1: the untimed one) -> the probe's result
    target: float | None


class ColdRunner:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.push_tables = session.fresh_tables("cold")
        zone = zone_of(session.build.parameter_default("NxcloudTimezone") or "+08:00")
        self.samples = {kind: PushSample.load(kind, zone) for kind in session.push}
        self.lake: LocalLake | None = None
        self.stream_event: dict[str, Any] = {}

    def subjects(self, stack: contextlib.ExitStack) -> list[Subject]:
        """Every push function, every scheduled one and the change publisher (its
        stand-in started on ``stack``)."""
        subjects = [Subject(fn, kind, self._push(kind, fn), PUSH_TARGET) for kind, fn in self.s.push.items()]
        subjects += [Subject(fn, None, self._sync(fn), SYNC_TARGET) for fn in self.s.scheduled]
        publisher = self.s.publisher
        if publisher is not None:
            source = stream_source(self.s.build, publisher)
            self.stream_event = insert_event(stream_scenario(self.s, source, 1, sync_copies=False))
            self.lake = stack.enter_context(stand_in())
            subjects.append(Subject(publisher, None, lambda _round: self.publisher_run(publisher), None))
        return subjects

    def _push(self, kind: str, function: Function) -> Callable[[int], dict[str, Any]]:
        return lambda _round: self.push_run(kind, function)

    def _sync(self, function: Function) -> Callable[[int], dict[str, Any]]:
        return lambda round_number: self.sync_run(function, seed=round_number)

    def push_run(self, kind: str, function: Function) -> dict[str, Any]:
        name = deployed_name(function.name)
        env = {
            **lambdas.lambda_env(self.s.endpoint, name, function.memory_mb),
            **self.s.push_env(function, self.push_tables),
        }
        event, _ = self.samples[kind].fresh()
        result = lambdas.probe(_spec(function, "invoke", event, name), env, f"{function.name} cold start")
        status = (result.get("answer") or {}).get("statusCode")
        if status != 200:
            raise RuntimeError(f"{function.name} answered {status}: {result.get('answer')}")
        return result

    def sync_run(self, function: Function, seed: int) -> dict[str, Any]:
        names = self.s.fresh_tables("coldsync")
        try:
            now_ms = int(time.time() * 1000)
            self.s.fake.records = generate_records(SYNC_COLD_RECORDS, now_ms - 1_200_000, 900_000, seed=seed)
            name = deployed_name(function.name)
            # One window, one page: a regular run ten minutes after the last one.
            env = {
                **lambdas.lambda_env(self.s.endpoint, name, function.memory_mb),
                **self.s.sync_env(function, names, SYNC_INITIAL_LOOKBACK_SECONDS="720"),
            }
            result = lambdas.probe(
                _spec(function, "invoke", scheduled_event(), name), env, f"{function.name} cold start", timeout=300
            )
        finally:
            self.s.drop_tables(names)
        answer = result.get("answer") or {}
        if "handed" in answer:  # the archiver's hourly retry: nothing failed, nothing handed back
            return result
        if answer.get("status") != "complete" or answer.get("new", SYNC_COLD_RECORDS) != SYNC_COLD_RECORDS:
            raise RuntimeError(f"{function.name} answered {answer}")
        return result

    def publisher_run(self, function: Function) -> dict[str, Any]:
        """The publisher answering a stream batch of one INSERT: a success only if the
        stand-in took one event and one Firehose record of it."""
        if self.lake is None:
            raise RuntimeError("the stand-in EventBridge and Firehose is not started")
        name = deployed_name(function.name)
        env = {
            **lambdas.lambda_env(self.s.endpoint, name, function.memory_mb),
            **publisher_env(self.s, function, self.push_tables, self.lake.endpoint),
        }
        before = dict(self.lake.puts)
        result = lambdas.probe(_spec(function, "invoke", self.stream_event, name), env, f"{function.name} cold start")
        received = {key: self.lake.puts[key] - before[key] for key in before}
        answer = result.get("answer")
        if answer != {"batchItemFailures": []} or received != {"events": 1, "records": 1}:
            raise RuntimeError(f"{function.name} answered {answer}; the stand-in received {received}")
        return result


def cold_starts(session: Session) -> list[Row]:
    runs = session.args.runs
    runner = ColdRunner(session)
    receivers: list[float] = []
    table = runner.push_tables.get("CallRecordsTable") or next(iter(runner.push_tables.values()))
    order_rng = random.Random(9)
    with contextlib.ExitStack() as stack:
        stack.callback(session.drop_tables, runner.push_tables)
        subjects = runner.subjects(stack)
        samples: dict[str, list[dict[str, Any]]] = {subject.function.name: [] for subject in subjects}
        floors: dict[str, list[float]] = {subject.function.name: [] for subject in subjects}
        log(f"cold starts: {runs} rounds of {len(subjects)} functions, each beside a floor run (and a round untimed)")
        for subject in subjects:  # untimed: file caches, DynamoDB Local's tables
            _floor(lambdas.lambda_env(session.endpoint))
            subject.run(-1)
        for round_number in range(runs):
            order = list(subjects)
            order_rng.shuffle(order)
            for position, subject in enumerate(order):
                name = subject.function.name
                floor_first = (round_number + position) % 2 == 0
                if floor_first:
                    floors[name].append(_floor(lambdas.lambda_env(session.endpoint)))
                samples[name].append(subject.run(round_number))
                if subject.kind is not None:
                    receivers.append(_receiver(lambdas.lambda_env(session.endpoint), table))
                if not floor_first:
                    floors[name].append(_floor(lambdas.lambda_env(session.endpoint)))
            log(f"cold starts: round {round_number + 1}/{runs} done")

    # The floor runs of every function, pooled: as interleaved as each function's own, and
    # four times as many, so the baseline moves less with the machine's other work.
    floor = statistics.median(value for values in floors.values() for value in values)
    rows = []
    for subject in subjects:
        function, target = subject.function, subject.target
        total = statistics.median(sample["total_ms"] for sample in samples[function.name])
        value = ratio(total, floor)
        rows.append(
            Row(
                "1",
                f"cold start {function.name}",
                total,
                "ms",
                baseline=floor,
                ratio=value,
                target="-" if target is None else f"<={target}x",
                meets=None if target is None else at_most(target)(value),
                detail={
                    "runs": len(samples[function.name]),
                    "import_ms_median": statistics.median(s["import_ms"] for s in samples[function.name]),
                    "invoke_ms_median": statistics.median(s["invoke_ms"] for s in samples[function.name]),
                    "total_ms": [s["total_ms"] for s in samples[function.name]],
                    "floor_ms_beside": floors[function.name],
                    "floor_median_beside": statistics.median(floors[function.name]),
                    "sys_path": function.sys_path,
                    "layers": [layer.name for layer in function.layers],
                },
            )
        )
    session.note(
        "1  cold start = a fresh .venv-lambda python (boto3 only, -s, PYTHONDONTWRITEBYTECODE=1, minimal env) with "
        "the function's build dir and its layers on sys.path, timed from before `import app` to the first answer "
        "(push: its sample event, a new record, on DynamoDB Local; sync: a scheduled run of one window, "
        f"{SYNC_COLD_RECORDS} new records from the stand-in NXCLOUD, fresh tables; change publisher: a stream "
        "batch of one INSERT of a call-centre call stored by the write rule on DynamoDB Local and read from the "
        "table's stream in Lambda's JSON, published to devtools.lake_local.LocalLake on loopback, each run checked "
        "to answer no batchItemFailures and to have put one event and one Firehose record); floor = `import boto3; "
        'boto3.client("dynamodb")` in the same kind of process, run beside each function run, the median of all '
        "of them; interpreter start-up is in neither. "
        + "; ".join(
            f"{row.label.removeprefix('cold start ')}: import {row.detail['import_ms_median']:.0f} ms + "
            f"first answer {row.detail['invoke_ms_median']:.0f} ms"
            for row in rows
        )
    )
    return rows + _against_receiver(session, subjects, samples, receivers)


def _against_receiver(
    session: Session,
    subjects: list[Subject],
    samples: dict[str, list[dict[str, Any]]],
    receivers: list[float],
) -> list[Row]:
    """Each push function's cold start beside a minimal receiver's (measured beside it)."""
    if not receivers:
        return []
    receiver = statistics.median(receivers)
    rows = []
    for subject in subjects:
        function = subject.function
        if subject.kind is None:
            continue
        total = statistics.median(sample["total_ms"] for sample in samples[function.name])
        rows.append(
            Row(
                "1",
                f"cold start {function.name} vs a minimal receiver",
                total,
                "ms",
                baseline=receiver,
                ratio=ratio(total, receiver),
                detail={"receiver_ms": receivers},
            )
        )
    session.note(
        "1  minimal receiver = the floor and one conditional PutItem of a new item to the same table, the first "
        "call a push makes (connection, signing, endpoint rules): the floor of a cold start that answers a push"
    )
    return rows


def without_bytecode(session: Session) -> list[Row]:
    """The import of each handler as built, beside the same build without .pyc."""
    runs = session.args.nopyc_runs
    if runs <= 0:
        return []
    with tempfile.TemporaryDirectory(prefix="bench-nopyc-") as scratch:
        copy = Path(scratch) / "build"
        shutil.copytree(session.build.root, copy)
        for cache in list(copy.rglob("__pycache__")):
            shutil.rmtree(cache)
        for compiled in list(copy.rglob("*.pyc")):
            compiled.unlink()
        stripped = read_build(copy)
        names = dict.fromkeys(session.build.tables, "bench-import-only")  # nothing is called
        built: dict[str, list[float]] = {name: [] for name in session.build.functions}
        plain: dict[str, list[float]] = {name: [] for name in session.build.functions}
        log(f"imports without .pyc: {runs} rounds of {len(built)} functions, as built and without bytecode")
        for round_number in range(runs):
            for position, name in enumerate(sorted(built)):
                pairs = [(session.build.functions[name], built), (stripped.functions[name], plain)]
                if (round_number + position) % 2:
                    pairs.reverse()
                for function, into in pairs:
                    env = {
                        **lambdas.lambda_env(session.endpoint, name, function.memory_mb),
                        **session.build.environment(name, session.table_refs(names)),
                    }
                    result = lambdas.probe(_spec(function, "import", None, name), env, f"{name} import")
                    into[name].append(float(result["import_ms"]))
    rows = []
    for name in sorted(built):
        as_built, source_only = statistics.median(built[name]), statistics.median(plain[name])
        rows.append(
            Row(
                "1",
                f"import {name}, no .pyc vs as built",
                source_only,
                "ms",
                baseline=as_built,
                ratio=ratio(source_only, as_built),
                detail={"as_built_ms": built[name], "no_pyc_ms": plain[name]},
            )
        )
    return rows
