"""The change publisher warm, beside the bare sends of the same events and rows, in the
kind of interpreter Lambda runs.

``.venv-lambda/bin/python -s -P bench/probe_publisher.py SPEC`` (Python 3.13 with boto3
alone; SPEC a JSON file naming the built function's ``sys_path``, as
:mod:`bench.probe_lambda`'s). The endpoints of EventBridge and Firehose come from
``AWS_ENDPOINT_URL_EVENTBRIDGE`` and ``AWS_ENDPOINT_URL_FIREHOSE`` (the bench's stand-in).

Each of SPEC's ``batches`` is a stream batch (Lambda's event) with what the bare sends
put for it, built beforehand by the bench: its PutEvents entries in groups of 10 and
its Firehose records. A round answers every batch through the handler and sends its
entries and records bare (boto3 ``put_events`` and ``put_record_batch``, side by side on
as many threads as the publisher uses), in alternating order; ``warmup`` rounds first,
untimed. Per batch: the handler's and the bare sends' times, the bytes the handler
wrote to stdout (what CloudWatch Logs ingests), and what the publisher reported
(``Published``: changes published, Firehose records and bytes). A handler answer with
a failure, or a refused bare send, stops the probe: a figure of a broken run is none.

Prints ``@@BENCH@@ <json>`` (the handler's own log lines go to the same stdout, before it).
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

MARKER = "@@BENCH@@"


def stdout_bytes() -> int:
    """What this process has written to stdout (a file: the bench's probe runner)."""
    sys.stdout.flush()
    return os.fstat(1).st_size


def bare_sender(events: Any, firehose: Any, stream: str, threads: int) -> Any:
    def send(batch: dict[str, Any]) -> None:
        records = [{"Data": base64.b64decode(data)} for data in batch["records"]]
        calls: list[Callable[[], Any]] = [partial(events.put_events, Entries=group) for group in batch["entry_groups"]]
        if records:
            calls.append(partial(firehose.put_record_batch, DeliveryStreamName=stream, Records=records))
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(calls)))) as pool:
            answers = list(pool.map(lambda call: call(), calls))
        refused = sum(int(answer.get("FailedEntryCount") or answer.get("FailedPutCount") or 0) for answer in answers)
        if refused:
            raise SystemExit(f"the stand-in refused {refused} bare entries or records")

    return send


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    sys.path[:0] = spec["sys_path"]
    # The repository last on the path, for probe_lambda's Context (bench/__init__ imports nothing).
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.probe_lambda import Context  # noqa: PLC0415

    module = importlib.import_module(spec.get("module", "app"))
    handler = getattr(module, spec.get("function", "handler"))
    from nxcloud_cdr import publisher  # noqa: PLC0415 - the layer, on the path above

    outcomes: list[Any] = []
    original = publisher.ChangePublisher.publish_records

    def kept(self: Any, records: Any) -> Any:
        outcome = original(self, records)
        outcomes.append(outcome)
        return outcome

    publisher.ChangePublisher.publish_records = kept  # type: ignore[method-assign]

    import boto3  # noqa: PLC0415 - the bare sends' client, as a minimal publisher would

    threads = int(spec.get("threads", publisher.PARALLEL_CALLS))
    send = bare_sender(boto3.client("events"), boto3.client("firehose"), spec["stream"], threads)
    batches: list[dict[str, Any]] = spec["batches"]
    results: list[dict[str, Any]] = [
        {"label": batch["label"], "changes": batch["changes"], "handler_ms": [], "bare_ms": [], "log_bytes": []}
        for batch in batches
    ]
    warmup, rounds = int(spec.get("warmup", 3)), int(spec["rounds"])
    for round_number in range(warmup + rounds):
        timed = round_number >= warmup
        for position, (batch, result) in enumerate(zip(batches, results, strict=True)):
            steps = ["handler", "bare"] if (round_number + position) % 2 == 0 else ["bare", "handler"]
            for step in steps:
                if step == "bare":
                    start = time.perf_counter()
                    send(batch)
                    elapsed = (time.perf_counter() - start) * 1000
                    if timed:
                        result["bare_ms"].append(elapsed)
                    continue
                before = stdout_bytes()
                context = Context(spec["context"])
                start = time.perf_counter()
                answer = handler(batch["event"], context)
                elapsed = (time.perf_counter() - start) * 1000
                written = stdout_bytes() - before
                outcome = outcomes.pop()
                if (answer or {}).get("batchItemFailures") or outcome.published != batch["changes"]:
                    raise SystemExit(
                        f"batch {batch['label']}: answered {answer}; published {outcome.published} of "
                        f"{batch['changes']} changes (events failed {outcome.events_failed}, rows failed "
                        f"{outcome.rows_failed}, errors {outcome.errors})"
                    )
                if timed:
                    result["handler_ms"].append(elapsed)
                    result["log_bytes"].append(written)
                result.update(
                    published=outcome.published,
                    no_change=outcome.no_change,
                    lake_records=outcome.lake_records,
                    lake_bytes=outcome.lake_bytes,
                )
    sys.stdout.flush()
    print(MARKER, json.dumps({"batches": results, "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
