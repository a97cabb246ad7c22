"""Lambda's DynamoDB stream event source, run against DynamoDB Local's stream: the
template's filter patterns applied, batches of its size, partial batch failures tried
again from the failed record a bounded number of times, then given up (Lambda's
on-failure destination: here the :attr:`StreamPump.given_up` list).

The local stack runs one in a thread for the recording archiver; functional tests call
:meth:`StreamPump.drain` to deliver everything written so far.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3

from .template import StreamSource

Handler = Callable[[dict[str, Any], Any], Any]


def matches(pattern: Any, value: Any) -> bool:
    """The part of Lambda's event filtering the template uses: objects match key by
    key, a list of options matches a value equal to one of them or, for an option
    ``{"prefix": text}``, a string that starts with it."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches(inner, value[key]) for key, inner in pattern.items()
        )
    if isinstance(pattern, list):
        return any(_option_matches(option, value) for option in pattern)
    return bool(pattern == value)


def _option_matches(option: Any, value: Any) -> bool:
    if not isinstance(option, dict):
        return bool(option == value)
    if set(option) == {"prefix"}:
        return isinstance(value, str) and value.startswith(option["prefix"])
    raise NotImplementedError(f"content filter {sorted(option)} is not supported here (prefix is)")


def lambda_json(value: Any) -> Any:
    # Lambda's event is JSON: a binary attribute arrives as base64 text, a time as epoch seconds.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return int(value.timestamp())
    raise TypeError(f"{type(value).__name__} in a stream record")


def _lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(json.dumps(record, default=lambda_json))
    event["eventSourceARN"] = stream_arn
    return event


class StreamPump:
    def __init__(
        self,
        endpoint: str,
        table_name: str,
        source: StreamSource,
        handler: Handler,
        context: Callable[[], Any],
    ) -> None:
        self.source = source
        self._handler = handler
        self._context = context
        self._ddb = boto3.client("dynamodb", endpoint_url=endpoint)
        self._streams: Any = boto3.client("dynamodbstreams", endpoint_url=endpoint)
        self.stream_arn = str(self._ddb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"])
        # Shard id -> the last sequence number handed on (None: from the shard's start).
        self._positions: dict[str, str | None] = {}
        self._finished: set[str] = set()
        self._failures: dict[str, int] = {}
        self.given_up: list[dict[str, Any]] = []
        self.delivered = 0
        self._lock = threading.Lock()

    def _new_records(self) -> list[tuple[str, dict[str, Any]]]:
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"].get("Shards", [])
        found: list[tuple[str, dict[str, Any]]] = []
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._finished:
                continue
            after = self._positions.get(shard_id)
            arguments: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
            if after is None:
                arguments["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                arguments.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
            iterator = self._streams.get_shard_iterator(**arguments).get("ShardIterator")
            while iterator:
                response = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                found.extend((shard_id, record) for record in response.get("Records", []))
                iterator = response.get("NextShardIterator")
                if not response.get("Records"):
                    if iterator is None and "EndingSequenceNumber" in shard.get("SequenceNumberRange", {}):
                        self._finished.add(shard_id)
                    break
        return found

    def drain(self) -> int:
        """Deliver every record written so far (and what the deliveries write: the
        archiver's own updates pass through the filter too). The records delivered."""
        with self._lock:
            total = 0
            while True:
                records = self._new_records()
                if not records:
                    return total
                total += self._deliver(records)

    def _deliver(self, records: list[tuple[str, dict[str, Any]]]) -> int:
        delivered = 0
        pending = list(records)
        while pending:
            batch: list[tuple[str, dict[str, Any]]] = []
            while pending and len(batch) < self.source.batch_size:
                shard_id, record = pending.pop(0)
                if all(not matches(pattern, record) for pattern in self.source.patterns) and self.source.patterns:
                    self._positions[shard_id] = record["dynamodb"]["SequenceNumber"]
                    continue
                batch.append((shard_id, record))
            if not batch:
                continue
            event = {"Records": [_lambda_record(record, self.stream_arn) for _, record in batch]}
            try:
                answer = self._handler(event, self._context()) or {}
                failed = [str(entry["itemIdentifier"]) for entry in answer.get("batchItemFailures") or []]
            except Exception:  # the whole batch failed
                failed = [batch[0][1]["dynamodb"]["SequenceNumber"]]
            delivered += len(batch)
            self.delivered += len(batch)
            sequences = [record["dynamodb"]["SequenceNumber"] for _, record in batch]
            first_failed = min((sequences.index(number) for number in failed if number in sequences), default=None)
            if first_failed is None:
                for shard_id, record in batch:
                    self._positions[shard_id] = record["dynamodb"]["SequenceNumber"]
                continue
            for shard_id, record in batch[:first_failed]:
                self._positions[shard_id] = record["dynamodb"]["SequenceNumber"]
            shard_id, record = batch[first_failed]
            number = record["dynamodb"]["SequenceNumber"]
            self._failures[number] = self._failures.get(number, 0) + 1
            if 0 <= self.source.max_retries < self._failures[number]:
                self.given_up.append({"shard": shard_id, "sequenceNumber": number, "keys": record["dynamodb"]["Keys"]})
                self._positions[shard_id] = number
                pending = batch[first_failed + 1 :] + pending
            else:
                pending = batch[first_failed:] + pending
        return delivered

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Deliver as records arrive until ``stop`` is set (the local stack's thread)."""
        while not stop.wait(interval):
            try:
                self.drain()
            except Exception as exc:  # DynamoDB Local going away at shutdown, say
                if not stop.is_set():
                    print(f"stream pump: {type(exc).__name__}: {exc}", flush=True)  # noqa: T201
