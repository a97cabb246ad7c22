"""One Lambda cold start, in a fresh interpreter of the kind Lambda runs.

Run by the bench with ``.venv-lambda/bin/python -s -P bench/probe_lambda.py SPEC`` (a
Python 3.13 with boto3 and nothing else, writing no bytecode) and nothing from this
repository on its path: SPEC is a JSON file naming what to put on ``sys.path`` (the
built function's directory and its layers, as Lambda does with /var/task and /opt).

Modes:

* ``floor``: ``import boto3; boto3.client("dynamodb")`` and nothing else;
* ``receiver``: the floor and one conditional ``put_item`` (a minimal receiver's first push);
* ``import``: import the handler's module;
* ``invoke``: import the handler's module and answer one event (with ``count_calls``,
  every AWS call is counted and timed, after the import: for runs whose figure is the
  handler's time, not the cold start's).

Timing starts just before the first import. The result is one line on stdout, after
whatever the function printed: ``@@BENCH@@ <json>``.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
from typing import Any

MARKER = "@@BENCH@@"


class Context:
    """Lambda's context object, as its Python runtime builds it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.function_name: str = spec["function_name"]
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(spec["memory_limit_in_mb"])
        self.invoked_function_arn: str = spec["invoked_function_arn"]
        self.aws_request_id: str = spec["aws_request_id"]
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name: str = spec.get("log_stream_name", "2026/01/01/[$LATEST]0")
        self._deadline = time.monotonic() + int(spec["timeout_ms"]) / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def maxrss_kb() -> int:
    """Peak RSS of this program: VmHWM (ru_maxrss would count the parent's memory the
    child had between fork and exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def count_calls() -> dict[str, list[float]]:
    """Count every AWS call and the time spent in it (summed over threads), by operation."""
    import threading  # noqa: PLC0415

    import botocore.client  # noqa: PLC0415 - imported by the function already

    calls: dict[str, list[float]] = {}
    lock = threading.Lock()
    original = getattr(botocore.client.BaseClient, "_make_api_call")  # noqa: B009 - private: mypy does not see it

    def counted(self: Any, operation: str, params: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, operation, params)
        finally:
            elapsed = time.perf_counter() - start
            with lock:
                entry = calls.setdefault(operation, [0, 0.0])
                entry[0] += 1
                entry[1] += elapsed

    setattr(botocore.client.BaseClient, "_make_api_call", counted)  # noqa: B010
    return calls


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    mode = spec["mode"]
    sys.path[:0] = spec.get("sys_path", [])
    event = spec.get("event")
    context = Context(spec["context"]) if "context" in spec else None
    result: dict[str, Any] = {"mode": mode}

    start = time.perf_counter()
    if mode == "floor":
        import boto3  # noqa: PLC0415 - the measured import

        boto3.client("dynamodb")
        result["total_ms"] = (time.perf_counter() - start) * 1000
    elif mode == "receiver":  # the floor and the one write a minimal receiver makes
        import boto3  # noqa: PLC0415 - the measured import

        boto3.client("dynamodb").put_item(
            TableName=spec["table"], Item=spec["item"], ConditionExpression="attribute_not_exists(pk)"
        )
        result["total_ms"] = (time.perf_counter() - start) * 1000
    else:
        module = importlib.import_module(spec.get("module", "app"))
        imported = time.perf_counter()
        result["import_ms"] = (imported - start) * 1000
        result["rss_after_import_kb"] = maxrss_kb()
        if mode == "invoke":
            handler = getattr(module, spec.get("function", "handler"))
            calls = count_calls() if spec.get("count_calls") else None
            before = time.perf_counter()
            answer = handler(event, context)
            answered = time.perf_counter()
            result["handler_ms"] = (answered - before) * 1000
            if calls is not None:
                result["calls"] = calls
            result["invoke_ms"] = (answered - imported) * 1000
            result["answer"] = answer
        result["total_ms"] = (time.perf_counter() - start) * 1000
    result["maxrss_kb"] = maxrss_kb()
    sys.stdout.flush()
    print(MARKER, json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
