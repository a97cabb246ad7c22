"""Row 4: the sync's throughput beside a bare ``BatchWriteItem`` of the same items, and
its peak memory at two sizes.

The sync runs as built (``.venv-lambda``, the function's build dir and layers), through
its handler with a scheduled event, against the stand-in NXCLOUD (records spread over
the first run's look-back, read in the template's windows and pages of 100) and fresh
tables on DynamoDB Local. Its time is the handler's (the imports excluded), its memory
the process's peak RSS (``ru_maxrss``). The baseline writes the items the sync stored
(read back from its table) into fresh tables, 25 per ``BatchWriteItem``, one thread,
in the same kind of process. Sync and baseline runs alternate. Both are measured twice:
on DynamoDB Local as it is, and behind :class:`bench.latency_proxy.LatencyProxy`, which
holds each request 5 ms as DynamoDB's round trip does (the target's figure: DynamoDB
Local answers at once and serialises writes, which hides what concurrency buys).
"""

from __future__ import annotations

import base64
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import dynamo, lambdas
from bench.build import Function
from bench.events import deployed_name
from bench.report import Row, at_least, at_most, ratio
from bench.session import Session, log, scheduled_event
from bench.stand_in import check_indexed_pages
from devtools.fake_nxcloud import generate_records

THROUGHPUT_TARGET = 0.8
MEMORY_FLAT = 1.1
RUN_DEADLINE_S = 3600
# DynamoDB's own time a request, in the Region, from Lambda (single-digit milliseconds).
PROXY_DELAY_S = 0.005
REFERENCE_ITEMS = 2000  # the context's time: the figure is throughput, not Lambda's limit


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__b64__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {name: _encode(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_encode(inner) for inner in value]
    return value


class SyncBench:
    def __init__(self, session: Session, function: Function, endpoint: str | None = None) -> None:
        self.s = session
        self.function = function
        # Where the sync and the baseline reach DynamoDB: the engine, or the latency proxy.
        self.endpoint = endpoint or session.endpoint
        self.sample_env = session.sync_env(function, dict.fromkeys(session.build.tables, "x"))

    def records(self, count: int) -> list[dict[str, Any]]:
        """``count`` records over the first run's look-back, up to the delay, a margin kept
        at both ends (the records are made again for each run, relative to now)."""
        lookback = self.s.setting(self.sample_env, "SYNC_INITIAL_LOOKBACK_SECONDS", 86_400)
        delay = self.s.setting(self.sample_env, "SYNC_DELAY_SECONDS", 120)
        now_ms = int(time.time() * 1000)
        first = now_ms - (lookback - 900) * 1000
        last = now_ms - (delay + 300) * 1000
        return generate_records(count, first, max(last - first, 60_000), seed=count)

    def sync(self, count: int) -> tuple[dict[str, Any], dict[str, str]]:
        """One scheduled run storing ``count`` new records; the tables are the caller's to drop."""
        names = self.s.fresh_tables("sync")
        self.s.fake.records = self.records(count)
        name = deployed_name(self.function.name)
        env = {
            **lambdas.lambda_env(self.endpoint, name, self.function.memory_mb),
            **self.s.sync_env(self.function, names),
        }
        spec = {
            "mode": "invoke",
            "sys_path": self.function.sys_path,
            "module": self.function.handler_module,
            "function": self.function.handler_function,
            "event": scheduled_event(),
            "context": lambdas.context_spec(name, self.function.memory_mb, RUN_DEADLINE_S * 1000),
            "count_calls": True,
        }
        started = time.monotonic()
        self.s.fake.take_served()
        try:
            result = lambdas.probe(spec, env, f"sync of {count} records", timeout=RUN_DEADLINE_S + 300)
        except Exception:
            self.s.drop_tables(names)
            raise
        answer = result.get("answer") or {}
        if answer.get("status") != "complete" or answer.get("new", count) != count:
            self.s.drop_tables(names)
            raise RuntimeError(f"the sync of {count} records answered {answer}")
        result["records_per_s"] = count / (float(result["handler_ms"]) / 1000)
        result["served"] = self.s.fake.take_served()
        log(
            f"sync: {count} records in {result['handler_ms'] / 1000:.1f} s ({result['records_per_s']:.0f}/s), "
            f"peak RSS {result['maxrss_kb'] / 1024:.0f} MB (wall {time.monotonic() - started:.0f} s)"
        )
        return result, names

    def dump_items(self, names: dict[str, str], path: Path) -> int:
        table = names.get("CallRecordsTable") or next(iter(names.values()))
        items = dynamo.scan(self.s.client, table)
        with path.open("w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(_encode(item)) + "\n")
        return len(items)

    def bare(self, items_path: Path, mode: str = "batch", limit: int = 0) -> dict[str, Any]:
        names = self.s.fresh_tables("bare")
        try:
            table = names.get("CallRecordsTable") or next(iter(names.values()))
            result = lambdas.probe_batch(items_path, table, lambdas.lambda_env(self.endpoint), mode, limit=limit)
        finally:
            self.s.drop_tables(names)
        result["records_per_s"] = result["items"] / result["seconds"]
        rate = result["records_per_s"]
        log(f"bare {mode}: {result['items']} items in {result['seconds']:.1f} s ({rate:.0f}/s)")
        return result


def _where(result: dict[str, Any]) -> str:
    calls = result.get("calls") or {}
    parts = [
        f"{operation} x{int(count)} {seconds:.1f} s"
        for operation, (count, seconds) in sorted(calls.items(), key=lambda pair: -pair[1][1])
    ]
    pages, served = result.get("served") or (0, 0.0)
    return (
        f"handler {result['handler_ms'] / 1000:.1f} s; DynamoDB (time summed over the sync's threads): "
        f"{', '.join(parts) or 'not counted'}; stand-in NXCLOUD: {pages} requests answered in {served:.2f} s"
    )


def _interleaved(
    session: Session, function: Function, small: int, rounds: int, items_path: Path, *, delay_s: float
) -> dict[str, list[dict[str, Any]]]:
    """``rounds`` syncs of ``small`` records, as many bare BatchWriteItem runs of the
    items the first sync stored, and as many bare conditional transactions of them (the
    floor of a write that may not overwrite), the order turning each round, each run on
    a new engine (behind the latency proxy when ``delay_s``)."""
    runs: dict[str, list[dict[str, Any]]] = {"sync": [], "batch": [], "transact": []}
    order = list(runs)
    for round_number in range(rounds):
        steps = order if not items_path.exists() else order[round_number % 3 :] + order[: round_number % 3]
        for step in steps:
            with session.on_fresh_engine(session.args.engine_warmup, delay_s) as (fresh, endpoint):
                bench = SyncBench(fresh, function, endpoint)
                if step != "sync":
                    runs[step].append(bench.bare(items_path, step))
                    continue
                result, names = bench.sync(small)
                if not items_path.exists():
                    stored = bench.dump_items(names, items_path)
                    log(f"sync: {stored} items read back for the baseline")
                runs["sync"].append(result)
    return runs


def sync_rows(session: Session) -> list[Row]:
    if not session.scheduled:
        session.note("4  no scheduled function in the build: no sync figures")
        return []
    check_indexed_pages()
    function = session.scheduled[0]
    small, large = session.args.sizes
    rounds = session.args.sync_rounds
    log(
        f"sync: {rounds} rounds of {small} records (sync and bare BatchWriteItem alternating, each on a new "
        f"DynamoDB Local) on DynamoDB Local, as many behind a {PROXY_DELAY_S * 1000:.0f} ms latency proxy, "
        f"then {large} once"
    )
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as scratch:
        items_path = Path(scratch) / "items.jsonl"
        plain = _interleaved(session, function, small, rounds, items_path, delay_s=0.0)
        slow = _interleaved(session, function, small, rounds, items_path, delay_s=PROXY_DELAY_S)
        syncs, bares = plain["sync"], plain["batch"]
        slow_syncs, slow_bares = slow["sync"], slow["batch"]
        # For reference (not interleaved): the same items by conditional PutItem, from one
        # thread and from 8 (as the sync writes), on a part of them.
        reference = {}
        for mode in ("put", "put8"):
            with session.on_fresh_engine(session.args.engine_warmup) as (fresh, endpoint):
                reference[mode] = SyncBench(fresh, function, endpoint).bare(items_path, mode, REFERENCE_ITEMS)
    with session.on_fresh_engine(session.args.engine_warmup) as (fresh, endpoint):
        big, _ = SyncBench(fresh, function, endpoint).sync(large)

    sync_rate = statistics.median(result["records_per_s"] for result in syncs)
    bare_rate = statistics.median(result["records_per_s"] for result in bares)
    slow_sync_rate = statistics.median(result["records_per_s"] for result in slow_syncs)
    slow_bare_rate = statistics.median(result["records_per_s"] for result in slow_bares)
    slow_throughput = ratio(slow_sync_rate, slow_bare_rate)
    floors = {
        label: ratio(
            statistics.median(result["records_per_s"] for result in runs["transact"]),
            statistics.median(result["records_per_s"] for result in runs["batch"]),
        )
        for label, runs in (("proxy", slow), ("plain", plain))
    }
    small_rss = statistics.median(result["maxrss_kb"] for result in syncs) / 1024
    large_rss = big["maxrss_kb"] / 1024
    throughput = ratio(sync_rate, bare_rate)
    memory = ratio(large_rss, small_rss)
    session.note(
        f"4  sync: {function.name} as built, scheduled event, template windows (look-back, window, overlap, delay), "
        f"records spread over the look-back; {small} records: median of {len(syncs)} runs "
        f"{statistics.median(r['handler_ms'] for r in syncs) / 1000:.1f} s; bare BatchWriteItem of the items it "
        f"stored: median of {len(bares)} runs {statistics.median(r['seconds'] for r in bares):.1f} s. "
        f"{large} records: {big['handler_ms'] / 1000:.1f} s ({big['records_per_s']:.0f}/s). Peak RSS includes the "
        f"imports (RSS after import: {big['rss_after_import_kb'] / 1024:.0f} MB); growth beyond it: "
        f"{small_rss - statistics.median(r['rss_after_import_kb'] for r in syncs) / 1024:.0f} MB at {small}, "
        f"{large_rss - big['rss_after_import_kb'] / 1024:.0f} MB at {large}."
    )
    session.note(
        f"4  where the {small}-record sync's time goes (last run): {_where(syncs[-1])}. For reference (run once, "
        f"not interleaved), {reference['put']['items']} of the same items by conditional PutItem: "
        f"{reference['put']['records_per_s']:.0f}/s from one thread, {reference['put8']['records_per_s']:.0f}/s "
        "from 8 threads (DynamoDB Local is not DynamoDB: under concurrency least of all)"
    )
    session.note(f"4  where the {large}-record sync's time goes: {_where(big)}")
    session.note(
        f"4  behind the latency proxy ({PROXY_DELAY_S * 1000:.0f} ms before each request reaches DynamoDB Local, "
        f"as DynamoDB's own round trip): sync median "
        f"{statistics.median(r['handler_ms'] for r in slow_syncs) / 1000:.1f} s, bare BatchWriteItem median "
        f"{statistics.median(r['seconds'] for r in slow_bares):.1f} s. Where the sync's time goes (last run): "
        f"{_where(slow_syncs[-1])}. DynamoDB Local alone answers in well under a millisecond and serialises "
        "writes, so concurrency cannot pay there: the plain row is for reference, the proxied one is the target"
    )
    session.note(
        f"4  the floor of a write that may not overwrite a callback's item: the same items by bare conditional "
        f"TransactWriteItems, 100 a request, beside the bare BatchWriteItem in the same rounds: "
        f"{floors['proxy']:.2f}x behind the proxy, {floors['plain']:.2f}x on plain DynamoDB Local (DynamoDB "
        "Local's transactions cost it about twice a batch's time per item; DynamoDB bills a transactional write "
        "twice a plain one's units)"
    )
    if big["handler_ms"] / 1000 > function.timeout_s - 30:
        session.note(
            f"4  the {large}-record run took {big['handler_ms'] / 1000:.0f} s here, beyond the function's "
            f"{function.timeout_s} s Timeout (less its 30 s margin): on Lambda it would take several scheduled runs "
            "(the bench gives the run an hour so that throughput and memory are measured on one run)"
        )
    return [
        Row(
            "4",
            f"sync {small} new records vs bare BatchWriteItem, {PROXY_DELAY_S * 1000:.0f} ms a request",
            slow_sync_rate,
            "rec/s",
            baseline=slow_bare_rate,
            ratio=slow_throughput,
            target=f">={THROUGHPUT_TARGET}x",
            meets=at_least(THROUGHPUT_TARGET)(slow_throughput),
            detail={"sync": slow_syncs, "bare": slow_bares},
        ),
        Row(
            "4",
            f"floor: bare conditional TransactWriteItems vs BatchWriteItem, {PROXY_DELAY_S * 1000:.0f} ms a request",
            statistics.median(result["records_per_s"] for result in slow["transact"]),
            "rec/s",
            baseline=slow_bare_rate,
            ratio=floors["proxy"],
            detail={"transact": slow["transact"], "plain_transact": plain["transact"]},
        ),
        Row(
            "4",
            f"sync {small} new records vs bare BatchWriteItem, plain DynamoDB Local",
            sync_rate,
            "rec/s",
            baseline=bare_rate,
            ratio=throughput,
            detail={"sync": syncs, "bare": bares},
        ),
        Row(
            "4",
            f"sync peak RSS {large} vs {small} records",
            large_rss,
            "MB",
            baseline=small_rss,
            ratio=memory,
            target=f"flat (<={MEMORY_FLAT}x)",
            meets=at_most(MEMORY_FLAT)(memory),
            detail={
                "large": {key: value for key, value in big.items() if key != "answer"},
                "answer": big.get("answer"),
            },
        ),
    ]
