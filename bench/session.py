"""What every section of the bench shares: the build, DynamoDB Local, the stand-in
NXCLOUD, the options, the notes printed under the table."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from bench import dynamo
from bench.build import Build, Function
from bench.events import EVENTS_DIR, event_file, load_event, path_token
from bench.latency_proxy import LatencyProxy
from bench.stand_in import IndexedFakeNxcloud
from devtools.dynamodb_local import DynamoDBLocal

SCHEDULE_TYPES = {"Schedule", "ScheduleV2"}
# Resources a function checks for at start (the archiver's bucket and queue) but that no
# measured run reaches: their Ref is a name of the bench's own.
STAND_IN_REFS = ("RecordingsBucket", "RecordingFailuresQueue")
START = time.monotonic()


def log(message: str) -> None:
    elapsed = time.monotonic() - START
    print(f"[bench {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


def drain(engine: DynamoDBLocal) -> None:
    """Read DynamoDB Local's stderr, which devtools pipes, so that it never fills."""
    process = getattr(engine, "_process", None)
    stream = getattr(process, "stderr", None)
    if stream is not None:
        threading.Thread(target=lambda: [None for _ in iter(lambda: stream.read(65536), b"")], daemon=True).start()


@dataclass
class Session:
    args: argparse.Namespace
    build: Build
    endpoint: str
    client: Any  # the bench's own DynamoDB client on DynamoDB Local
    fake: IndexedFakeNxcloud
    push: dict[str, Function]  # kind -> function
    scheduled: list[Function]
    # The change publisher: the function the table's stream alone triggers.
    publisher: Function | None = None
    notes: list[str] = field(default_factory=list)
    # Figures one section hands to another (row 6 uses rows 2 and 3).
    shared: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes.append(text)

    @contextlib.contextmanager
    def on_fresh_engine(self, warmup: int, delay_s: float = 0.0) -> Iterator[tuple[Session, str]]:
        """This session on a DynamoDB Local of its own, warmed up, and the endpoint its
        processes use: the engine, or a :class:`LatencyProxy` holding each request
        ``delay_s`` in front of it. DynamoDB Local slows down as it holds more items
        (dropped tables' included: 3,000 writes took 3 s on a new engine and 23 s after
        five tables of as many), so runs compared side by side each start on a new one."""
        with DynamoDBLocal() as engine:
            drain(engine)
            fresh = dataclasses.replace(
                self, endpoint=engine.endpoint, client=boto3.client("dynamodb", endpoint_url=engine.endpoint)
            )
            fresh.warm_engine(warmup)
            if delay_s <= 0:
                yield fresh, engine.endpoint
                return
            with LatencyProxy(engine.endpoint, delay_s) as proxy:
                yield fresh, proxy.endpoint

    def fresh_tables(self, tag: str, parameters: dict[str, str] | None = None) -> dict[str, str]:
        """Fresh tables of the template, at its parameter defaults unless ``parameters``
        say otherwise (the optional lookups)."""
        names = dynamo.fresh_table_names(self.build.tables, tag)
        dynamo.create(self.client, self.build.template, names, parameters)
        return names

    def drop_tables(self, names: dict[str, str]) -> None:
        dynamo.delete(self.client, names)

    def table_refs(self, names: dict[str, str]) -> dict[str, str]:
        """Ref values for a function's environment: the tables, and a name for each
        resource a function refuses to start without that the bench never calls (the
        recordings bucket and queue); every other resource (secrets) resolves to
        nothing, so its variable is left out and the functions use local settings."""
        refs = dict.fromkeys(self.build.template.get("Resources", {}), "")
        refs.update({name: f"bench-{name}" for name in STAND_IN_REFS if name in refs})
        refs.update(names)
        return refs

    def push_env(self, function: Function, names: dict[str, str]) -> dict[str, str]:
        env = self.build.environment(function.name, self.table_refs(names))
        kind = next(kind for kind, fn in self.push.items() if fn.name == function.name)
        env["PUSH_TOKEN"] = path_token(load_event(event_file(kind)))
        return env

    def sync_env(self, function: Function, names: dict[str, str], **overrides: str) -> dict[str, str]:
        env = self.build.environment(function.name, self.table_refs(names))
        env.update(
            NXCLOUD_API_BASE_URL=self.fake.base_url,
            NXCLOUD_ACCESS_KEY=self.fake.access_key,
            NXCLOUD_ACCESS_SECRET=self.fake.access_secret,
        )
        env.update(overrides)
        return env

    def warm_engine(self, puts: int = 2500) -> None:
        """DynamoDB Local is a JVM: its first thousands of calls are several times slower
        than the next. Warm it up before anything is timed (writes with every index,
        batched reads, updates, tables made and dropped)."""
        started = time.monotonic()
        names = self.fresh_tables("warmup")
        try:
            table = names.get("CallRecordsTable") or next(iter(names.values()))
            other = next((name for name in names.values() if name != table), table)
            for number in range(puts):
                self.client.put_item(
                    TableName=table,
                    Item=_warmup_item(number),
                    ConditionExpression="attribute_not_exists(pk)",
                )
                if number % 10 == 0:
                    keys = [{"pk": {"S": f"ID#w{n}"}, "sk": {"S": "warmup"}} for n in range(number, number + 10)]
                    self.client.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
                    self.client.update_item(
                        TableName=other,
                        Key={"pk": {"S": f"w{number}"}},
                        UpdateExpression="SET body = :b ADD attempts :one",
                        ExpressionAttributeValues={":b": {"B": b"x" * 300}, ":one": {"N": "1"}},
                    )
            for _ in range(5):
                self.drop_tables(self.fresh_tables("warmup"))
        finally:
            self.drop_tables(names)
        log(f"DynamoDB Local warmed up: {puts} writes in {time.monotonic() - started:.0f} s")

    def setting(self, env: dict[str, str], name: str, default: int) -> int:
        try:
            return int(env.get(name, default))
        except ValueError:
            return default


def _warmup_item(number: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"ID#w{number}"},
        "sk": {"S": "warmup"},
        "sortKey": {"S": f"2026-01-01T00:00:00Z#warmup#{number}"},
        "timeBucket": {"S": "warmup#2026-01"},
        "callerNumber": {"S": f"8521{number:07d}"},
        "calleeNumber": {"S": f"8522{number:07d}"},
        "raw": {"S": "x" * 700},
        "fields": {"M": {"n": {"N": str(number)}, "s": {"S": "text"}}},
    }


def scheduled_event() -> dict[str, Any]:
    path = EVENTS_DIR / "cc-cdr-sync-scheduled.json"
    if path.is_file():
        return load_event(path)
    return {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }
