"""The stack's bus and lake on this machine (``make local``), so that the change
publisher runs against them as it runs against AWS, through the real SDK:

- a stand-in of EventBridge's ``PutEvents`` and Firehose's ``PutRecordBatch`` (and
  ``PutRecord``): one small HTTP server on loopback speaking their JSON 1.1 protocol.
  The functions reach it through ``AWS_ENDPOINT_URL_EVENTBRIDGE`` (the SDK names the
  variable after the service's id, EventBridge) and ``AWS_ENDPOINT_URL_FIREHOSE``.
- the bus's sink: each event put, as EventBridge delivers it to a target (the envelope
  with ``detail-type``, ``time``, ``detail``...), one JSON line in
  ``.local/events/events.jsonl`` (``nxcdr events`` reads it).
- the delivery stream: the records' rows (concatenated JSON objects, de-aggregated as
  Firehose's RecordDeAggregation does) appended to a buffer file under
  ``.local/lake/.buffer/`` before the answer (a crash loses nothing), and written as
  Parquet by :func:`flush` (every 60 s while rows wait, as Firehose's buffer interval,
  when the stack stops, and on ``nxcdr lake flush``), in the deployed layout:
  ``<lake>/call_changes/dt=YYYY-MM-DD/part-<time>-<id>.parquet``, without the ``dt``
  column (a Hive-style partition, as Firehose's dynamic partitioning writes it), what
  cannot be converted under ``<lake>/errors/<type>/YYYY/MM/DD/`` (its ErrorOutputPrefix).
- :func:`duckdb_connection`: DuckDB over the lake, with the views ``call_changes`` and
  ``calls`` (``sql/calls.sql``, the SQL of the deployed view) that ``nxcdr sql`` runs on.

Operator-side only: pyarrow and duckdb are development requirements, never in a layer.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from nxcloud_cdr.change_events import COLUMNS, EVENT_COLUMNS

from devtools import REPO_ROOT

SQL_DIR = REPO_ROOT / "sql"
CALLS_SQL = SQL_DIR / "calls.sql"
TABLE = "call_changes"
ACCOUNT = "000000000000"
REGION = "us-east-1"
# The local buffer interval, counted as Firehose counts its own: from the first row
# buffered. Shorter than Firehose's least (60 s) so that a pushed call is in Parquet
# within a minute of the push, its stream poll and the publisher's run included.
FLUSH_INTERVAL_S = 30.0
# The services' own limits, so that what passes here passes there.
MAX_EVENT_ENTRIES = 10
MAX_EVENTS_BYTES = 256 * 1024
MAX_FIREHOSE_RECORDS = 500
MAX_FIREHOSE_RECORD_BYTES = 1000 * 1024
MAX_FIREHOSE_BATCH_BYTES = 4 * 1024 * 1024
# The error output's types: Firehose's own, and the buffer's (a local file, which a crash
# mid-append can leave with a torn last line; Firehose has no such file).
PROCESSING_FAILED = "processing-failed"
UNREADABLE_LINE = "unreadable-buffer-line"
_DT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = datetime(1970, 1, 1)  # the lake's timestamps: UTC without a zone


@dataclass(frozen=True)
class LakePaths:
    """Where the local stack keeps its lake and its bus's sink."""

    lake: Path
    events: Path

    @property
    def buffer(self) -> Path:
        return self.lake / ".buffer"


def default_paths(state_dir: Path) -> LakePaths:
    """The paths beside the local stack's state file (``.local/`` in the repository)."""
    return LakePaths(lake=state_dir / "lake", events=state_dir / "events" / "events.jsonl")


def local_paths(state_file: Path | None = None) -> LakePaths:
    """The paths of the running local stack (its state file), else where it keeps them:
    for ``nxcdr sql``, ``nxcdr events`` and ``nxcdr lake flush``, which may run after it
    stopped (its state file is gone then; the lake is not)."""
    if state_file is None:
        state_file = Path(os.environ.get("NXCDR_LOCAL_STATE") or REPO_ROOT / ".local" / "stack.json")
    paths = default_paths(state_file.parent)
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return paths
    lake = state.get("lake") or {}
    return LakePaths(
        lake=Path(lake.get("dir") or paths.lake),
        events=Path(lake.get("eventsFile") or paths.events),
    )


# -- the lake's schema -----------------------------------------------------------------


def lake_columns() -> dict[str, str]:
    """The columns of ``call_changes`` in its files, in order, with their Glue types
    (``dt``, the partition, is in the folder names only)."""
    return {**EVENT_COLUMNS, **COLUMNS}


def _arrow_type(glue: str) -> Any:
    import pyarrow as pa  # noqa: PLC0415 - only where Parquet is written

    scalar = {
        "string": pa.string(),
        "bigint": pa.int64(),
        "boolean": pa.bool_(),
        # Firehose writes the Glue type timestamp; UTC without a zone, by convention.
        "timestamp": pa.timestamp("ms"),
    }
    if glue.startswith("array<") and glue.endswith(">"):
        return pa.list_(_arrow_type(glue[len("array<") : -1]))
    return scalar[glue]


def arrow_schema() -> Any:
    import pyarrow as pa  # noqa: PLC0415

    return pa.schema([pa.field(name, _arrow_type(kind)) for name, kind in lake_columns().items()])


_DUCKDB_TYPES = {"string": "VARCHAR", "bigint": "BIGINT", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP"}


def _duckdb_type(glue: str) -> str:
    if glue.startswith("array<") and glue.endswith(">"):
        return _duckdb_type(glue[len("array<") : -1]) + "[]"
    return _DUCKDB_TYPES[glue]


# -- the delivery stream's buffer ------------------------------------------------------


@contextmanager
def _locked(paths: LakePaths) -> Iterator[None]:
    """The buffer's lock, across threads and processes (``nxcdr lake flush`` beside the
    stack): every put and every flush hold it, so that a flush takes each row once."""
    paths.buffer.mkdir(parents=True, exist_ok=True)
    with (paths.buffer / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _append_durably(path: Path, lines: Iterable[str]) -> None:
    """Append these lines and sync them (the caller holds the file's lock)."""
    data = "".join(f"{line}\n" for line in lines).encode()
    if not data:
        return
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # A crash mid-append leaves a last line without its end: these lines must start
        # on a line of their own, or the first of them is lost with it.
        size = os.fstat(descriptor).st_size
        if size and os.pread(descriptor, 1, size - 1) != b"\n":
            data = b"\n" + data
        remaining = memoryview(data)
        while remaining:
            remaining = remaining[os.write(descriptor, remaining) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def deaggregate(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The JSON objects of one record's data (concatenated, whitespace allowed between
    them), as Firehose's RecordDeAggregation (SubRecordType JSON) reads them; with the
    reason the record cannot be read, if it cannot (then no row of it is kept)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], "not UTF-8"
    decoder = json.JSONDecoder()
    rows: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            return [], f"not JSON at {position}: {error.msg}"
        if not isinstance(value, dict):
            return [], f"a JSON {type(value).__name__}, not an object"
        rows.append(value)
    if not rows:
        return [], "empty"
    return rows, None


def buffer_records(paths: LakePaths, records: Iterable[bytes]) -> None:
    """Append the rows of these records to the buffer (durably: before the answer);
    a record that cannot be read is kept for the error output, as Firehose does."""
    lines: list[str] = []
    for data in records:
        rows, problem = deaggregate(data)
        if problem is not None:
            entry = {"error": PROCESSING_FAILED, "reason": problem, "raw": base64.b64encode(data).decode()}
            lines.append(json.dumps(entry))
        lines.extend(json.dumps({"row": row}, separators=(",", ":")) for row in rows)
    with _locked(paths):
        _append_durably(paths.buffer / "current.jsonl", lines)


def buffered_rows(paths: LakePaths) -> int:
    """Rows (and unreadable records) waiting for a flush."""
    if not paths.buffer.is_dir():
        return 0
    with _locked(paths):
        count = 0
        for batch in _pending(paths):
            with batch.open("rb") as handle:
                count += sum(1 for _ in handle)
        return count


def _pending(paths: LakePaths) -> list[Path]:
    sealed = sorted(paths.buffer.glob("batch-*.jsonl"))
    current = paths.buffer / "current.jsonl"
    return [*sealed, current] if current.exists() and current.stat().st_size else sealed


@dataclass(frozen=True)
class FlushReport:
    rows: int
    files: tuple[Path, ...]
    errors: int


def flush(lake_dir: Path | None = None, *, now: datetime | None = None) -> FlushReport:
    """Write what is buffered as Parquet (one file per partition per batch) and take it
    out of the buffer: the rows written, the files, the records put in the error output.

    Under the buffer's lock, the buffer is sealed as a batch first; a batch's files are
    named after it and written whole before they are renamed into place, and the batch
    is removed after its files: a flush that dies half-way is finished by the next one,
    which writes the same files again (no row lost, none twice). A line that is not
    one buffer_records wrote whole (a crash mid-append tears the last) is set aside in
    the error output, under ``errors/unreadable-buffer-line/``, with the batch's rows
    written: it never holds the buffer up."""
    paths = local_paths() if lake_dir is None else LakePaths(lake=Path(lake_dir), events=Path())
    if not paths.buffer.is_dir():  # nothing was ever put: no folders made for nothing
        return FlushReport(0, (), 0)
    now = now or datetime.now(UTC)
    written: list[Path] = []
    rows = errors = 0
    with _locked(paths):
        current = paths.buffer / "current.jsonl"
        if current.exists() and current.stat().st_size:
            current.rename(paths.buffer / f"batch-{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}.jsonl")
        for batch in sorted(paths.buffer.glob("batch-*.jsonl")):
            files, batch_rows, batch_errors = _write_batch(paths.lake, batch)
            written.extend(files)
            rows += batch_rows
            errors += batch_errors
            batch.unlink()
    return FlushReport(rows, tuple(written), errors)


def _write_batch(lake: Path, batch: Path) -> tuple[list[Path], int, int]:
    import pyarrow.parquet as pq  # noqa: PLC0415

    name = batch.stem.removeprefix("batch-")  # <time>-<id>: the files' names, the same in a rerun
    moment = datetime.strptime(name.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    schema = arrow_schema()
    partitions: dict[str, list[dict[str, Any]]] = {}
    failed: list[dict[str, Any]] = []
    for line in batch.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        entry = _buffer_entry(line)
        if "row" not in entry:
            failed.append(entry)
            continue
        row = entry["row"]
        dt = row.get("dt")
        if not isinstance(dt, str) or not _DT.match(dt):
            failed.append({"error": "partitioning-failed", "reason": f"dt is {dt!r}", "row": row})
            continue
        partitions.setdefault(dt, []).append(row)
    files: list[Path] = []
    rows = 0
    for dt, members in sorted(partitions.items()):
        table = _table(members, schema)
        if table is None:  # a row the schema cannot hold: find it, keep the others
            good: list[dict[str, Any]] = []
            for row in members:
                if _table([row], schema) is None:
                    failed.append(
                        {"error": "format-conversion-failed", "reason": "not of the table's types", "row": row}
                    )
                else:
                    good.append(row)
            table = _table(good, schema) if good else None
        if table is None:
            continue
        target = lake / TABLE / f"dt={dt}" / f"part-{name}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        pq.write_table(table, partial, compression="snappy")
        _fsync(partial)
        partial.replace(target)
        files.append(target)
        rows += table.num_rows
    if failed:
        errors_dir = {entry["error"] for entry in failed}
        for kind in sorted(errors_dir):
            folder = lake / "errors" / kind / f"{moment:%Y/%m/%d}"
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{name}.jsonl"
            partial = target.with_name(f".{target.name}.partial")
            partial.write_text(
                "".join(json.dumps(entry) + "\n" for entry in failed if entry["error"] == kind), encoding="utf-8"
            )
            partial.replace(target)
    return files, rows, len(failed)


def _buffer_entry(line: bytes) -> dict[str, Any]:
    """A buffer line as buffer_records writes it: a row, or a record for the error
    output; any other line (torn by a crash mid-append, damaged) as an error output
    entry of its own, its bytes kept."""
    try:
        entry = json.loads(line)
    except ValueError as error:  # UnicodeDecodeError is one
        reason = f"not JSON: {error}"
    else:
        if isinstance(entry, dict) and (isinstance(entry.get("row"), dict) or entry.get("error") == PROCESSING_FAILED):
            return entry
        reason = "neither a row nor a record for the error output"
    return {"error": UNREADABLE_LINE, "reason": reason, "raw": base64.b64encode(line).decode()}


def _table(rows: list[dict[str, Any]], schema: Any) -> Any:
    """The rows as an Arrow table of the lake's schema (columns it does not have are
    left out, as Firehose's conversion leaves them); None when a value does not fit."""
    import pyarrow as pa  # noqa: PLC0415

    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- the bus's sink --------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(line: str | bytes) -> dict[str, Any] | None:
    """A line of the sink as an event; None for a blank line or one torn by a crash
    mid-append (its put was never answered): the events after it are still read."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def read_events(events_file: Path | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    """The events put on the local bus (EventBridge's envelope), oldest first; those at
    or after ``since`` (an aware datetime) when given."""
    path = local_paths().events if events_file is None else events_file
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    events = [event for event in map(_event, lines) if event is not None]
    if since is None:
        return events
    floor = _iso(since)
    return [event for event in events if str(event.get("time", "")) >= floor]


def follow_events(
    events_file: Path | None = None,
    since: datetime | None = None,
    *,
    poll_s: float = 0.5,
    stop: threading.Event | None = None,
) -> Iterator[dict[str, Any]]:
    """The events since ``since``, then each new one as it is put (``nxcdr events
    --follow``), until ``stop`` is set (or forever)."""
    path = local_paths().events if events_file is None else events_file
    stop = stop or threading.Event()
    floor = _iso(since) if since else ""
    offset = 0
    pending = b""
    while not stop.is_set():
        try:
            with path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size < offset:  # the file was replaced
                    offset, pending = 0, b""
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            event = _event(line)
            if event is not None and str(event.get("time", "")) >= floor:
                yield event
        if not complete:
            stop.wait(poll_s)


# -- DuckDB over the lake ----------------------------------------------------------------


def calls_sql() -> str:
    """``sql/calls.sql``: the SELECT of the view ``calls``, its comments left out."""
    lines = CALLS_SQL.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("--")).strip().rstrip(";")


def duckdb_connection(lake_dir: Path | None = None) -> Any:
    """DuckDB in memory with the views ``call_changes`` (the lake's Parquet, ``dt`` from
    the folders as text, as the Glue table has it) and ``calls``. Files written after
    it connected are read too; a lake with no file yet gives empty views of the same
    columns."""
    import duckdb  # noqa: PLC0415 - only the commands that query import it

    lake = local_paths().lake if lake_dir is None else Path(lake_dir)
    connection = duckdb.connect(":memory:")
    pattern = str(lake / TABLE / "*" / "*.parquet")
    if any((lake / TABLE).glob("*/*.parquet")):
        options = "hive_partitioning = true, hive_types = {'dt': 'VARCHAR'}, union_by_name = true"
        source = f"SELECT * FROM read_parquet('{_quoted(pattern)}', {options})"  # noqa: S608 - the lake's own path
    else:
        columns = [f"CAST(NULL AS {_duckdb_type(kind)}) AS {name}" for name, kind in lake_columns().items()]
        source = f"SELECT {', '.join([*columns, 'CAST(NULL AS VARCHAR) AS dt'])} WHERE false"
    connection.execute(f"CREATE VIEW {TABLE} AS {source}")
    connection.execute(f"CREATE VIEW calls AS {calls_sql()}")
    return connection


def _quoted(text: str) -> str:
    return text.replace("'", "''")


# -- the stand-in services ---------------------------------------------------------------


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class LocalLake:
    """The stand-in bus and delivery stream on one loopback port, and the flush timer.

    ``bus_names`` and ``stream_names``: the names it answers to (others are refused as
    the services refuse an unknown bus or stream); None accepts any."""

    def __init__(
        self,
        paths: LakePaths,
        port: int = 0,
        *,
        bus_names: Iterable[str] | None = None,
        stream_names: Iterable[str] | None = None,
    ) -> None:
        self.paths = paths
        self.bus_names = None if bus_names is None else {*bus_names, "default"}
        self.stream_names = None if stream_names is None else set(stream_names)
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._events_lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.puts = {"events": 0, "records": 0}
        # When the first row since the timer's last flush was put (monotonic seconds).
        self._oldest: float | None = None
        self._oldest_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalLake:
        self.paths.lake.mkdir(parents=True, exist_ok=True)
        self.paths.events.parent.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="local-lake", daemon=True
        ).start()
        return self

    def start_timer(self, interval_s: float = FLUSH_INTERVAL_S, tick_s: float = 1.0) -> None:
        """Flush once the first row put since the last flush has waited ``interval_s``
        (Firehose's buffer interval). Rows a stopped or killed stack left buffered count
        from now: they wait no longer than new ones."""
        if buffered_rows(self.paths):
            with self._oldest_lock:
                self._oldest = self._oldest if self._oldest is not None else time.monotonic()

        def run() -> None:
            said = ""
            while not self._stop.wait(tick_s):
                with self._oldest_lock:
                    due = self._oldest is not None and time.monotonic() - self._oldest >= interval_s
                    if due:
                        self._oldest = None
                if not due:
                    continue
                try:
                    flush(self.paths.lake)
                    said = ""
                except Exception as exc:  # the rows stay buffered: tried again an interval later
                    with self._oldest_lock:
                        self._oldest = self._oldest if self._oldest is not None else time.monotonic()
                    problem = f"local lake: flush: {type(exc).__name__}: {exc}"
                    if problem != said:  # once, not at every try
                        print(problem, file=sys.stderr, flush=True)  # noqa: T201
                        said = problem

        self._timer = threading.Thread(target=run, name="local-lake-flush", daemon=True)
        self._timer.start()

    def stop(self, *, flush_buffer: bool = True) -> FlushReport | None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._timer is not None:
            self._timer.join(timeout=30)
        return flush(self.paths.lake) if flush_buffer else None

    def __enter__(self) -> LocalLake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the operations ----------------------------------------------------------------

    def put_events(self, request: dict[str, Any]) -> dict[str, Any]:
        entries = request.get("Entries")
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_EVENT_ENTRIES:
            raise ServiceError("ValidationException", f"Entries: between 1 and {MAX_EVENT_ENTRIES} entries")
        size = sum(_entry_size(entry) for entry in entries)
        if size > MAX_EVENTS_BYTES:
            raise ServiceError(
                "ValidationException", f"Total size of the entries in the request is over the limit ({size} bytes)"
            )
        answers: list[dict[str, Any]] = []
        lines: list[str] = []
        for entry in entries:
            bus = str(entry.get("EventBusName") or "default").rsplit("/", 1)[-1]
            if self.bus_names is not None and bus not in self.bus_names:
                raise ServiceError("ResourceNotFoundException", f"Event bus {bus} does not exist.")
            problem = _entry_problem(entry)
            if problem is not None:
                answers.append({"ErrorCode": problem[0], "ErrorMessage": problem[1]})
                continue
            event_id = str(uuid.uuid4())
            moment = datetime.fromtimestamp(float(entry["Time"]), UTC) if entry.get("Time") is not None else None
            event = {
                "version": "0",
                "id": event_id,
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": ACCOUNT,
                "time": _iso(moment or datetime.now(UTC)),
                "region": REGION,
                "resources": list(entry.get("Resources") or []),
                "detail": json.loads(entry["Detail"]),
            }
            lines.append(json.dumps(event, separators=(",", ":")))
            answers.append({"EventId": event_id})
        with self._events_lock:
            _append_durably(self.paths.events, lines)
            self.puts["events"] += len(lines)
        failed = sum(1 for answer in answers if "ErrorCode" in answer)
        return {"FailedEntryCount": failed, "Entries": answers}

    def _check_stream(self, request: dict[str, Any]) -> None:
        name = request.get("DeliveryStreamName")
        if not isinstance(name, str) or not name:
            raise ServiceError("ValidationException", "DeliveryStreamName is required")
        if self.stream_names is not None and name not in self.stream_names:
            account_stream = f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}"
            raise ServiceError(
                "ResourceNotFoundException", f"Firehose {name} under account {ACCOUNT} not found. ({account_stream})"
            )

    def put_record_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        self._check_stream(request)
        records = request.get("Records")
        if not isinstance(records, list) or not 1 <= len(records) <= MAX_FIREHOSE_RECORDS:
            raise ServiceError("ValidationException", f"Records: between 1 and {MAX_FIREHOSE_RECORDS} records")
        data = [_record_data(record) for record in records]
        if sum(len(item) for item in data) > MAX_FIREHOSE_BATCH_BYTES:
            raise ServiceError("ValidationException", "the records are more than 4 MiB together")
        self._buffer(data)
        return {
            "FailedPutCount": 0,
            "Encrypted": False,
            "RequestResponses": [{"RecordId": _record_id()} for _ in data],
        }

    def put_record(self, request: dict[str, Any]) -> dict[str, Any]:
        self._check_stream(request)
        data = _record_data(request.get("Record") or {})
        self._buffer([data])
        return {"RecordId": _record_id(), "Encrypted": False}

    def _buffer(self, records: list[bytes]) -> None:
        buffer_records(self.paths, records)
        with self._oldest_lock:
            self.puts["records"] += len(records)
            if self._oldest is None:
                self._oldest = time.monotonic()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        lake = self
        operations = {
            "AWSEvents.PutEvents": lake.put_events,
            "Firehose_20150804.PutRecordBatch": lake.put_record_batch,
            "Firehose_20150804.PutRecord": lake.put_record,
        }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
            # An answer's headers and body are two writes: with Nagle's algorithm the
            # body waited for the client's delayed ACK, 40 ms on every PutEvents.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the stack prints what matters

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                operation = operations.get(target)
                if operation is None:
                    self._error(ServiceError("UnknownOperationException", f"not served here: {target!r}"))
                    return
                try:
                    request = json.loads(body or b"{}")
                    if not isinstance(request, dict):
                        raise ServiceError("SerializationException", "the body is not a JSON object")
                    self._answer(200, operation(request))
                except ServiceError as error:
                    self._error(error)
                except ValueError as error:
                    self._error(ServiceError("SerializationException", str(error)))

            def _error(self, error: ServiceError) -> None:
                self._answer(
                    error.status,
                    {"__type": error.code, "message": str(error)},
                    {"x-amzn-ErrorType": error.code},
                )

        return Handler


def _record_data(record: Any) -> bytes:
    if not isinstance(record, dict) or not isinstance(record.get("Data"), str):
        raise ServiceError("ValidationException", "each record needs its Data (base64)")
    try:
        data = base64.b64decode(record["Data"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise ServiceError("SerializationException", f"Data is not base64: {error}") from error
    if not data or len(data) > MAX_FIREHOSE_RECORD_BYTES:
        raise ServiceError("ValidationException", f"a record's Data is 1 to {MAX_FIREHOSE_RECORD_BYTES} bytes")
    return data


def _record_id() -> str:
    return base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes + uuid.uuid4().bytes).decode()


def _entry_size(entry: Any) -> int:
    """An entry's size as EventBridge counts it (its texts, 14 bytes for a time)."""
    if not isinstance(entry, dict):
        return 0
    size = 14 if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name) or "").encode())
    size += sum(len(str(resource).encode()) for resource in entry.get("Resources") or [])
    return size


def _entry_problem(entry: Any) -> tuple[str, str] | None:
    """Why EventBridge would fail this entry (its error code and message), else None."""
    if not isinstance(entry, dict):
        return "InvalidArgument", "An entry is not an object."
    if not entry.get("Source"):
        return "InvalidArgument", "Parameter Source is not valid. Reason: Source is a required argument."
    if not entry.get("DetailType"):
        return "InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is a required argument."
    try:
        detail = json.loads(entry.get("Detail") or "")
    except ValueError:
        return "MalformedDetail", "Detail is malformed."
    if not isinstance(detail, dict):
        return "MalformedDetail", "Detail is malformed."
    return None


def epoch_ms_to_datetime(value: int) -> datetime:
    """A lake timestamp (epoch milliseconds) as DuckDB reads it back: UTC, without a zone."""
    return _EPOCH + timedelta(milliseconds=value)


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.lake_local flush``: write what the local lake buffers."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments != ["flush"]:
        sys.stderr.write("usage: python -m devtools.lake_local flush\n")
        return 2
    started = time.monotonic()
    paths = local_paths()
    report = flush(paths.lake)
    sys.stdout.write(
        f"{report.rows} rows in {len(report.files)} files under {paths.lake / TABLE}"
        f"{f', {report.errors} to the error output' if report.errors else ''}"
        f" ({time.monotonic() - started:.2f} s)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
