"""Row 9: the change publisher warm, beside the bare sends of the same events and rows,
and what a million changes and a million calls cost on the bus and in the lake; and
what row 1's cold start of the publisher answers.

The stream records are real: call-centre calls (``devtools.fake_nxcloud.generate_records``)
written through the write rule (``nxcloud_cdr.write_rule.RecordWriter``) on DynamoDB
Local, each as its call-log callback stores it (an INSERT) and then as the sync stores
its copy of the same call (a MODIFY: the call's sources and last-seen time), and read
from the table's stream (NEW_AND_OLD_IMAGES) by ``devtools.streams.StreamPump`` with
the template's filter and batch size: Lambda's JSON, binary attributes as base64 text.
The publisher sends to ``devtools.lake_local.LocalLake``, the local stack's loopback
stand-in of EventBridge ``PutEvents`` and Firehose ``PutRecordBatch``, through
``AWS_ENDPOINT_URL_EVENTBRIDGE`` and ``AWS_ENDPOINT_URL_FIREHOSE``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import costs, lambdas
from bench.build import Build, Function
from bench.events import deployed_name, zone_of
from bench.report import Row, ratio
from bench.session import Session, log
from devtools.fake_nxcloud import generate_records
from devtools.lake_local import LakePaths, LocalLake, buffer_records, flush
from devtools.streams import StreamPump
from devtools.template import StreamSource, stream_sources

BUS = "bench-calls"
STREAM = "bench-call-changes"
# Calls of the warm scenario: two stream records each, in batches of the event source's size.
SCENARIO_CALLS = 150
# The sync's copy of a call is stored after the callbacks of this many later calls, so
# that a batch holds both kinds of change, as the stream does.
SYNC_LAG = 25
# What the lake's figures per million calls assume: changes a call (created, then
# updated: the sync's copy, a correction or the recording archived), and a steady
# million calls a month for the objects Firehose writes (one per buffer interval).
CHANGES_PER_CALL = 2
MONTHLY_CALLS = 1_000_000
MONTH_SECONDS = 30 * 86400


@dataclass
class StreamScenario:
    batches: list[dict[str, Any]]  # Lambda's events, as the event source hands them
    calls: int

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for batch in self.batches for record in batch["Records"]]


def stream_source(build: Build, function: Function) -> StreamSource:
    """The function's DynamoDB stream event source in the built template."""
    found = [source for source in stream_sources(build.template) if source.function == function.name]
    if not found:
        raise ValueError(f"{function.name} has no DynamoDB stream event source in {build.root}")
    return found[0]


def stream_scenario(session: Session, source: StreamSource, calls: int, *, sync_copies: bool = True) -> StreamScenario:
    """``calls`` call-centre calls stored by the write rule on fresh tables (the callback's
    copy, then, with ``sync_copies``, the sync's), as the publisher's event source hands
    their stream records over."""
    from nxcloud_cdr.kinds import RECORD_KINDS  # noqa: PLC0415 - the layer, on the dev path
    from nxcloud_cdr.sync import row_text  # noqa: PLC0415
    from nxcloud_cdr.write_rule import RecordWriter  # noqa: PLC0415

    build = session.build
    zone = zone_of(build.parameter_default("NxcloudTimezone") or "+08:00")
    names = session.fresh_tables("stream")
    try:
        table = names[source.table]
        writer = RecordWriter(
            session.client, table, retention_days=int(build.parameter_default("RetentionDays") or 0), zone=zone
        )
        kind = RECORD_KINDS["cc_cdr"]
        # An hour of calls yesterday at noon (UTC): one day partition, as a buffer's rows mostly are.
        noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
        rows = generate_records(calls, int(noon.timestamp() * 1000), 3600_000, seed=calls)

        def sync_copy(row: dict[str, Any]) -> None:
            writer.write(kind.map(row, row_text(row), zone), datetime.now(UTC), source="sync")

        for number, row in enumerate(rows):
            writer.write(kind.map(row, json.dumps(row), zone), datetime.now(UTC), source="push")
            if sync_copies and number >= SYNC_LAG:
                sync_copy(rows[number - SYNC_LAG])
        if sync_copies:
            for row in rows[max(0, len(rows) - SYNC_LAG) :]:
                sync_copy(row)
        batches: list[dict[str, Any]] = []

        def take(event: dict[str, Any], _context: Any) -> dict[str, Any]:
            batches.append(event)
            return {"batchItemFailures": []}

        StreamPump(session.endpoint, table, source, take, lambda: None).drain()
    finally:
        session.drop_tables(names)
    return StreamScenario(batches, calls)


def insert_event(scenario: StreamScenario) -> dict[str, Any]:
    """A stream batch of the scenario's first INSERT alone."""
    first = next(record for record in scenario.records if record.get("eventName") == "INSERT")
    return {"Records": [first]}


def _scratch_dir() -> str | None:
    """tmpfs when there is one: the stand-in's fsyncs then cost nothing, as a service's
    durability costs the publisher nothing but the round trip."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shutil.disk_usage(shm).free > 256 * 2**20 else None


@contextlib.contextmanager
def stand_in() -> Iterator[LocalLake]:
    """The loopback EventBridge and Firehose, answering to the bench's bus and stream
    names alone (a wrong name is refused, as the services refuse it)."""
    with tempfile.TemporaryDirectory(prefix="bench-lake-", dir=_scratch_dir()) as scratch:
        paths = LakePaths(lake=Path(scratch) / "lake", events=Path(scratch) / "events" / "events.jsonl")
        lake = LocalLake(paths, bus_names=[BUS], stream_names=[STREAM]).start()
        try:
            yield lake
        finally:
            lake.stop(flush_buffer=False)


def publisher_env(session: Session, function: Function, names: dict[str, str], endpoint: str) -> dict[str, str]:
    """The publisher's variables (template.yaml's, resolved), with the bench's bus and
    delivery stream on the stand-in at ``endpoint``."""
    env = session.build.environment(function.name, session.table_refs(names))
    env.update(
        EVENT_BUS_NAME=BUS,
        DELIVERY_STREAM_NAME=STREAM,
        AWS_ENDPOINT_URL_EVENTBRIDGE=endpoint,
        AWS_ENDPOINT_URL_FIREHOSE=endpoint,
    )
    return env


# -- what the bare sends put, built beforehand -------------------------------------------


@dataclass
class Prepared:
    """A stream batch, and the PutEvents entries (in calls of 10) and Firehose records
    the publisher puts for it, built by the layer's own functions."""

    label: str
    event: dict[str, Any]
    entry_groups: list[list[dict[str, Any]]]
    records: list[bytes]
    rows: list[bytes]
    entry_bytes: list[int]

    @property
    def changes(self) -> int:
        return len(self.rows)

    def spec(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "event": self.event,
            "changes": self.changes,
            "entry_groups": self.entry_groups,
            "records": [base64.b64encode(record).decode("ascii") for record in self.records],
        }


def prepare(label: str, event: dict[str, Any], zone: Any, phone_numbers: str) -> Prepared:
    from nxcloud_cdr.change_events import NumberPolicy, change_of  # noqa: PLC0415
    from nxcloud_cdr.publisher import (  # noqa: PLC0415
        BYTES_PER_RECORD,
        EVENT_BYTES_PER_CALL,
        EVENTS_PER_CALL,
        entry_bytes,
        event_entry,
        lake_bytes,
        pack,
    )

    emitted_at = datetime.now(UTC)
    entries: list[dict[str, Any]] = []
    rows: list[bytes] = []
    for record in event["Records"]:
        change = change_of(record, zone, NumberPolicy(phone_numbers))
        if change is None:
            continue
        event_id = str(uuid.uuid4())
        entries.append(event_entry(change, event_id, emitted_at, BUS))
        rows.append(lake_bytes(change, event_id, emitted_at))
    sizes = [entry_bytes(entry) for entry in entries]
    groups = pack(enumerate(sizes), EVENTS_PER_CALL, EVENT_BYTES_PER_CALL)
    records = pack(((index, len(row)) for index, row in enumerate(rows)), len(rows), BYTES_PER_RECORD)
    return Prepared(
        label,
        event,
        [[entries[index] for index in group] for group in groups],
        [b"".join(rows[index] for index in record) for record in records],
        rows,
        sizes,
    )


# -- the section ------------------------------------------------------------------------


def batching_window_s(build: Build, function: Function) -> float:
    """The stream event source's MaximumBatchingWindowInSeconds (0 when unset)."""
    events = build.template["Resources"][function.name]["Properties"].get("Events") or {}
    for event in events.values():
        if event.get("Type") == "DynamoDB":
            return float(event["Properties"].get("MaximumBatchingWindowInSeconds") or 0)
    return 0.0


@dataclass
class Measured:
    """What the warm run gave: the batches as prepared, the probe's figures of each, and
    what the stand-in received."""

    full: list[Prepared]
    single: Prepared
    runs: dict[str, dict[str, Any]]  # the probe's figures, by batch label
    envelopes: list[int]  # each event's bytes as the stand-in's bus delivered it
    received: dict[str, int]
    threads: int
    rounds: int
    warmup: int

    @property
    def full_runs(self) -> list[dict[str, Any]]:
        return [self.runs[batch.label] for batch in self.full]

    @property
    def single_run(self) -> dict[str, Any]:
        return self.runs[self.single.label]

    def batch_ms(self) -> list[float]:
        return [ms for run in self.full_runs for ms in run["handler_ms"]]

    def per_change(self, key: str) -> float:
        return float(statistics.median(float(ms) / run["changes"] for run in self.full_runs for ms in run[key]))

    @property
    def rows_json(self) -> list[bytes]:
        return [row for batch in self.full for row in batch.rows]

    @property
    def entry_bytes(self) -> list[int]:
        return [size for batch in self.full for size in batch.entry_bytes]


def measure(session: Session, function: Function, source: StreamSource) -> Measured:
    build = session.build
    log(f"publisher: {SCENARIO_CALLS} calls stored twice each, read from the stream in batches of {source.batch_size}")
    scenario = stream_scenario(session, source, SCENARIO_CALLS)
    phone_numbers = build.environment(function.name, {}).get("PHONE_NUMBERS", "full")
    zone = zone_of(build.parameter_default("NxcloudTimezone") or "+08:00")
    full = [
        prepare(f"full{number}", batch, zone, phone_numbers)
        for number, batch in enumerate(scenario.batches)
        if len(batch["Records"]) == source.batch_size
    ]
    if not full:
        raise RuntimeError(
            f"the scenario gave no batch of {source.batch_size} records ({len(scenario.records)} in all)"
        )
    single = prepare("single", insert_event(scenario), zone, phone_numbers)
    rounds = session.args.publisher_rounds
    warmup = max(2, rounds // 10)
    name = deployed_name(function.name)
    with stand_in() as lake:
        # The publisher reads no table: its table variables only have to be set.
        names = dict.fromkeys(build.tables, "bench-publisher-only")
        env = {
            **lambdas.lambda_env(session.endpoint, name, function.memory_mb),
            **publisher_env(session, function, names, lake.endpoint),
        }
        spec = {
            "sys_path": function.sys_path,
            "module": function.handler_module,
            "function": function.handler_function,
            "context": lambdas.context_spec(name, function.memory_mb, function.timeout_s * 1000),
            "batches": [batch.spec() for batch in [*full, single]],
            "rounds": rounds,
            "warmup": warmup,
            "stream": STREAM,
        }
        log(f"publisher: {rounds} rounds of {len(full)} batches of {source.batch_size} and one of 1, beside bare sends")
        result = lambdas.probe(spec, env, f"{function.name} warm", timeout=1800, script=lambdas.PROBE_PUBLISHER)
        envelopes = [len(line) for line in lake.paths.events.read_bytes().splitlines() if line.strip()]
        received = dict(lake.puts)
    runs = {run["label"]: run for run in result["batches"]}
    return Measured(full, single, runs, envelopes, received, int(result["threads"]), rounds, warmup)


def publisher_rows(session: Session) -> list[Row]:
    function = session.publisher
    if function is None:
        session.note("9  no change publisher (a function of the table's stream alone) in the build: row 9 left out")
        return []
    source = stream_source(session.build, function)
    measured = measure(session, function, source)
    parquet = parquet_rows(measured.rows_json, int(session.build.parameter_default("LakeBufferSeconds") or 300))
    shared: dict[str, Any] = {
        "memory_mb": function.memory_mb,
        "chunks": statistics.mean(math.ceil(size / costs.EVENTBRIDGE_CHUNK_BYTES) for size in measured.entry_bytes),
        "envelope_bytes": statistics.mean(measured.envelopes),
        "objects": objects_per_million_changes(parquet.buffer_s),
    }
    full_run, single_run = measured.full_runs[0], measured.single_run
    cases = {
        f"batches of {source.batch_size}": ChangeCost(
            changes=source.batch_size,
            billed_ms=math.ceil(statistics.median(measured.batch_ms())),
            log_bytes=statistics.median(size for run in measured.full_runs for size in run["log_bytes"]),
            lake_records=int(full_run["lake_records"]),
            lake_bytes=int(full_run["lake_bytes"]),
            **shared,
        ),
        "batches of 1": ChangeCost(
            changes=1,
            billed_ms=math.ceil(statistics.median(single_run["handler_ms"])),
            log_bytes=statistics.median(single_run["log_bytes"]),
            lake_records=int(single_run["lake_records"]),
            lake_bytes=int(single_run["lake_bytes"]),
            **shared,
        ),
    }
    rows = _rows(measured, parquet, cases, source.batch_size)
    _notes(session, function, measured, parquet=parquet, cases=cases, batch_size=source.batch_size)
    return rows


def _rows(measured: Measured, parquet: ParquetSize, cases: dict[str, ChangeCost], batch_size: int) -> list[Row]:
    figure, baseline = measured.per_change("handler_ms"), measured.per_change("bare_ms")
    single_ms = statistics.median(measured.single_run["handler_ms"])
    single_bare = statistics.median(measured.single_run["bare_ms"])
    row_bytes = statistics.mean(len(row) for row in measured.rows_json)
    rows = [
        Row(
            "9",
            f"warm publish, batch of {batch_size} changes: per change vs bare sends",
            figure,
            "ms",
            baseline=baseline,
            ratio=ratio(figure, baseline),
            detail={"batch_ms": measured.batch_ms()},
        ),
        Row(
            "9",
            "warm publish, batch of 1 change vs bare sends",
            single_ms,
            "ms",
            baseline=single_bare,
            ratio=ratio(single_ms, single_bare),
            detail={"batch_ms": measured.single_run["handler_ms"]},
        ),
        Row(
            "9",
            "lake row in Parquet vs as JSON, bytes a row",
            parquet.per_row,
            "B",
            baseline=row_bytes,
            ratio=ratio(parquet.per_row, row_bytes),
            detail={"rows": parquet.rows, "files": parquet.files, "bytes": parquet.bytes},
        ),
    ]
    for label, cost in cases.items():
        alone = sum(cost.bus_and_lake.values())
        rows.append(
            Row(
                "9",
                f"cost per million changes, {label}, vs bus and lake alone",
                cost.total,
                "$",
                baseline=alone,
                ratio=ratio(cost.total, alone),
                detail={**cost.publisher, **cost.bus_and_lake},
            )
        )
    rows += [
        Row(
            "9",
            f"cost per million calls: publisher, bus and lake, {CHANGES_PER_CALL} changes a call, {label}",
            cost.total * CHANGES_PER_CALL,
            "$",
        )
        for label, cost in cases.items()
    ]
    parquet_bytes = parquet.per_row * CHANGES_PER_CALL * 1e6
    scanned = max(costs.ATHENA_MINIMUM_BYTES, parquet_bytes)
    return [
        *rows,
        Row(
            "9",
            "S3 storage of a million calls' Parquet, a month",
            costs.S3_STANDARD_GB_MONTH * parquet_bytes / costs.GB,
            "$",
        ),
        Row(
            "9",
            "Athena SELECT count(*) FROM calls, a million calls' lake",
            costs.ATHENA_PER_TB_SCANNED * scanned / costs.TB,
            "$",
        ),
    ]


def _notes(
    session: Session,
    function: Function,
    measured: Measured,
    *,
    parquet: ParquetSize,
    cases: dict[str, ChangeCost],
    batch_size: int,
) -> None:
    records = [record for batch in measured.full for record in batch.event["Records"]]
    changes = sum(batch.changes for batch in measured.full)
    calls = len({record["dynamodb"]["Keys"]["pk"]["S"] for record in records})
    kinds = [record["eventName"] for record in records]
    entry_sizes, received = measured.entry_bytes, measured.received
    window = batching_window_s(session.build, function)
    rate = MONTHLY_CALLS * CHANGES_PER_CALL / MONTH_SECONDS
    full, one = cases[f"batches of {batch_size}"], cases["batches of 1"]
    parquet_bytes = parquet.per_row * CHANGES_PER_CALL * 1e6
    scanned = max(costs.ATHENA_MINIMUM_BYTES, parquet_bytes)
    session.note(
        "9  publisher warm: one .venv-lambda process (bench/probe_publisher.py) with the built function's dir and "
        "layers on sys.path. Its stream batches: call-centre calls (generate_records) stored through the write rule "
        "on DynamoDB Local, each by its call-log callback (an INSERT) and by the sync's copy "
        f"{SYNC_LAG} calls later (a MODIFY: sources, last_seen_at), read from the table's stream "
        f"(NEW_AND_OLD_IMAGES) with the template's filter in batches of {batch_size}: {len(measured.full)} "
        f"batches, {kinds.count('INSERT')} INSERT + {kinds.count('MODIFY')} MODIFY, {changes} changes of {calls} "
        f"calls ({changes / max(1, calls):.2f} changes a call). Each of {measured.rounds} rounds (after "
        f"{measured.warmup} untimed) answers every batch, and one of the first INSERT alone, through app.handler, "
        "and sends the same entries (PutEvents, 10 a call) and packed rows (one PutRecordBatch) bare through "
        f"boto3, side by side on up to {measured.threads} threads as the publisher does, alternating which goes "
        "first; medians (per change for the full batches). Every answer had no batchItemFailures and published "
        "every change; the stand-in (devtools.lake_local.LocalLake on loopback, its files on tmpfs) took "
        f"{received['events']} events and {received['records']} Firehose records. Local-machine time: on AWS each "
        "call is a round trip to the service, and 512 MB of Lambda is a fraction of a core."
    )
    session.note(
        f"9  sizes: a PutEvents entry {statistics.mean(entry_sizes):.0f} B (max {max(entry_sizes)}; under 64 KB: "
        f"one billed event each), the event as EventBridge delivers it (the event log's line) "
        f"{statistics.mean(measured.envelopes):.0f} B, a lake row "
        f"{statistics.mean(len(row) for row in measured.rows_json):.0f} B of JSON. A batch of {batch_size} is "
        f"{full.lake_records} Firehose record(s) of {full.lake_bytes} B (the publisher packs the rows); one change "
        f"alone is a record of {one.lake_bytes} B, billed as 5 KB. Parquet (devtools.lake_local.flush, Snappy): "
        f"{parquet.rows} rows in {parquet.files} file(s) of about {parquet.rows // max(1, parquet.files)} rows "
        f"(what a {parquet.buffer_s} s buffer holds at {MONTHLY_CALLS:,} calls a month), {parquet.bytes} B: "
        f"{parquet.per_row:.0f} B a row."
    )
    for label, cost in cases.items():
        session.note(f"9  cost per million changes, {label}, {costs.PRICES_AS_OF}: {cost.arithmetic()}")
    session.note(
        f"9  per million calls: the cost per million changes x {CHANGES_PER_CALL} changes a call (assumed: created, "
        f"then updated: the sync's copy, a correction or the recording archived; this scenario: "
        f"{changes / max(1, calls):.2f}). Which batches apply: at {MONTHLY_CALLS:,} calls a month, "
        f"{rate:.2f} changes a second on average, and a {window:g} s batching window, a batch holds one or two "
        f"changes (batches of 1); full batches take about {batch_size / max(window, 1):.0f} changes a second. "
        "Objects: one per buffer interval per day partition at a steady "
        f"{MONTHLY_CALLS:,} calls a month ({MONTH_SECONDS / parquet.buffer_s:.0f} a month). S3 storage: "
        f"{parquet.per_row:.0f} B a row x {CHANGES_PER_CALL * 1e6:,.0f} rows = {parquet_bytes / costs.GB:.3f} GB "
        f"x ${costs.S3_STANDARD_GB_MONTH}/GB-month, added each month a million calls are kept. Athena: "
        f"${costs.ATHENA_PER_TB_SCANNED:.2f}/TB (2^40 B) x {scanned / costs.MB:.0f} MB, the Parquet of a million "
        "calls whole (an upper bound: the view reads only the columns it needs; at least 10 MB a query). Free or "
        "left out: DynamoDB Streams reads by a Lambda trigger (free), Firehose's JQ hours (the dt extraction, "
        "billed per hour of JQ processing), Glue, S3 GETs by Athena, the failure queue, data transfer; Lambda's "
        f"START/END/REPORT lines (~{costs.PLATFORM_LOG_BYTES} B an invocation, only at LambdaReportLogLevel=INFO)."
    )


def objects_per_million_changes(buffer_s: int) -> float:
    """S3 objects Firehose writes a month at a steady :data:`MONTHLY_CALLS` (one per
    buffer interval, one day partition at a time), per million changes."""
    return (MONTH_SECONDS / buffer_s) / (MONTHLY_CALLS * CHANGES_PER_CALL / 1e6)


@dataclass(frozen=True)
class ChangeCost:
    """A million changes published in batches of ``changes``: each part's cost, from
    the figures measured (a batch's) and the list prices of :mod:`bench.costs`."""

    changes: int
    billed_ms: int  # a batch's handler time, rounded up to 1 ms
    log_bytes: float  # what one invocation writes to stdout
    lake_records: int  # a batch's Firehose records
    lake_bytes: int  # and their bytes
    memory_mb: int
    chunks: float  # billed events a change (64 KB chunks of its entry)
    envelope_bytes: float  # a change's line in the event log
    objects: float  # S3 objects per million changes

    @property
    def invocations(self) -> float:
        return 1e6 / self.changes

    @property
    def firehose_bytes(self) -> float:
        """Firehose's billed bytes a change: each record rounded up to 5 KB (a batch's
        records taken as of equal size: there is one unless its rows pass 1,000 KiB)."""
        increments = math.ceil(self.lake_bytes / self.lake_records / costs.FIREHOSE_RECORD_INCREMENT)
        return self.lake_records * increments * costs.FIREHOSE_RECORD_INCREMENT / self.changes

    @property
    def publisher(self) -> dict[str, float]:
        return {
            "lambda_requests": costs.LAMBDA_REQUESTS_PER_MILLION * self.invocations / 1e6,
            "lambda_duration": costs.LAMBDA_GB_SECOND
            * self.memory_mb
            / 1024
            * self.billed_ms
            / 1000
            * self.invocations,
            "lambda_logs": costs.LOGS_INGESTION_PER_GB * self.log_bytes * self.invocations / costs.GB,
        }

    @property
    def bus_and_lake(self) -> dict[str, float]:
        return {
            "eventbridge": costs.EVENTBRIDGE_CUSTOM_EVENTS_PER_MILLION * self.chunks,
            "event_log": costs.LOGS_INGESTION_PER_GB * self.envelope_bytes * 1e6 / costs.GB,
            "firehose_ingestion": costs.FIREHOSE_INGESTION_PER_GB * self.firehose_bytes * 1e6 / costs.GB,
            "format_conversion": costs.FIREHOSE_CONVERSION_PER_GB * self.firehose_bytes * 1e6 / costs.GB,
            "partitioning_gb": costs.FIREHOSE_PARTITIONING_PER_GB * self.lake_bytes / self.changes * 1e6 / costs.GB,
            "partitioning_objects": costs.FIREHOSE_PARTITIONING_PER_THOUSAND_OBJECTS * self.objects / 1000,
            "s3_puts": costs.S3_PUT_PER_THOUSAND * self.objects / 1000,
        }

    @property
    def total(self) -> float:
        return sum(self.publisher.values()) + sum(self.bus_and_lake.values())

    def arithmetic(self) -> str:
        p, b = self.publisher, self.bus_and_lake
        per_change = self.lake_bytes / self.changes
        return (
            f"Lambda ${costs.LAMBDA_REQUESTS_PER_MILLION:.2f}/M requests / {self.changes} = ${p['lambda_requests']:.3f}"
            f" + {costs.LAMBDA_GB_SECOND:.10f}/GB-s x {self.memory_mb / 1024:g} GB x {self.billed_ms} ms (a batch, "
            f"rounded up) x 1e6/{self.changes} = ${p['lambda_duration']:.3f}"
            f" + logs ${costs.LOGS_INGESTION_PER_GB:.2f}/GB x {self.log_bytes:.0f} B an invocation x 1e6/"
            f"{self.changes} = ${p['lambda_logs']:.3f}"
            f" | EventBridge ${costs.EVENTBRIDGE_CUSTOM_EVENTS_PER_MILLION:.2f}/M x {self.chunks:g} event a change"
            f" = ${b['eventbridge']:.3f}"
            f" + event log (EventLogDays > 0) ${costs.LOGS_INGESTION_PER_GB:.2f}/GB x {self.envelope_bytes:.0f} B"
            f" = ${b['event_log']:.3f}"
            f" + Firehose ingestion ${costs.FIREHOSE_INGESTION_PER_GB}/GB x {self.firehose_bytes:.0f} B a change"
            f" ({self.lake_records} record(s) of {self.lake_bytes} B a batch, in 5 KB increments)"
            f" = ${b['firehose_ingestion']:.3f}"
            f" + format conversion ${costs.FIREHOSE_CONVERSION_PER_GB}/GB x the same = ${b['format_conversion']:.3f}"
            f" + dynamic partitioning ${costs.FIREHOSE_PARTITIONING_PER_GB}/GB x {per_change:.0f} B"
            f" = ${b['partitioning_gb']:.3f}"
            f" + ${costs.FIREHOSE_PARTITIONING_PER_THOUSAND_OBJECTS}/1,000 objects x {self.objects:.0f}"
            f" = ${b['partitioning_objects']:.3f}"
            f" + S3 PUT ${costs.S3_PUT_PER_THOUSAND}/1,000 x {self.objects:.0f} = ${b['s3_puts']:.3f}"
            f"  => ${self.total:.3f} (bus and lake alone ${sum(b.values()):.3f})"
        )


@dataclass
class ParquetSize:
    rows: int
    files: int
    bytes: int
    buffer_s: int

    @property
    def per_row(self) -> float:
        return self.bytes / self.rows


def parquet_rows(rows: list[bytes], buffer_s: int) -> ParquetSize:
    """The rows as the local lake writes them (``devtools.lake_local.flush``: Parquet,
    Snappy, a file per partition per flush), flushed in files of as many rows as a
    buffer interval holds at a steady :data:`MONTHLY_CALLS` (fewer if the scenario
    has fewer): bytes per row depend on the rows a file holds."""
    per_file = max(1, min(len(rows), round(MONTHLY_CALLS * CHANGES_PER_CALL / (MONTH_SECONDS / buffer_s))))
    chunks = [rows[first : first + per_file] for first in range(0, len(rows) - per_file + 1, per_file)]
    with tempfile.TemporaryDirectory(prefix="bench-parquet-", dir=_scratch_dir()) as scratch:
        paths = LakePaths(lake=Path(scratch) / "lake", events=Path(scratch) / "events.jsonl")
        files = written = 0
        total = 0
        for chunk in chunks:
            buffer_records(paths, chunk)
            report = flush(paths.lake)
            files += len(report.files)
            written += report.rows
            total += sum(path.stat().st_size for path in report.files)
            if report.errors:
                raise RuntimeError(f"the local lake refused {report.errors} of the publisher's rows")
    return ParquetSize(written, files, total, buffer_s)
