"""Fresh Lambda-like processes: the interpreter (``.venv-lambda``: Python 3.13 with boto3
and nothing else, as Lambda's runtime), a minimal environment like Lambda's, and the
probes that run in them (:mod:`bench.probe_lambda`, :mod:`bench.probe_batch`)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from devtools import REPO_ROOT

LAMBDA_PYTHON = REPO_ROOT / ".venv-lambda" / "bin" / "python"
DEV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
PROBE = Path(__file__).with_name("probe_lambda.py")
PROBE_BATCH = Path(__file__).with_name("probe_batch.py")
PROBE_PUBLISHER = Path(__file__).with_name("probe_publisher.py")
MARKER = "@@BENCH@@"
REGION = "us-east-1"
# No file of the developer's (~/.aws) is read by any process of the bench.
NO_FILE = str(REPO_ROOT / "bench" / ".no-such-aws-file")


def aws_env(endpoint: str) -> dict[str, str]:
    """Dummy credentials, the region, DynamoDB Local as the endpoint, no AWS files."""
    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": NO_FILE,
        "AWS_SHARED_CREDENTIALS_FILE": NO_FILE,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
    }


def lambda_env(endpoint: str, function_name: str = "", memory_mb: int = 512) -> dict[str, str]:
    """What Lambda's python3.13 runtime sets that matters here, and nothing of this shell."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task and /opt are read-only on Lambda
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        **aws_env(endpoint),
    }
    if function_name:
        env["AWS_LAMBDA_FUNCTION_NAME"] = function_name
    return env


def context_spec(function_name: str, memory_mb: int, timeout_ms: int) -> dict[str, Any]:
    return {
        "function_name": function_name,
        "memory_limit_in_mb": memory_mb,
        "invoked_function_arn": f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}",
        "aws_request_id": str(uuid.uuid4()),
        "log_stream_name": f"2026/01/01/[$LATEST]{uuid.uuid4().hex}",
        "timeout_ms": timeout_ms,
    }


class ProbeError(RuntimeError):
    pass


def _result(stdout: str, stderr: str, returncode: int, what: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if returncode != 0 or not lines:
        tail = (stderr.strip() or stdout.strip())[-1500:]
        raise ProbeError(f"{what} exited {returncode}: {tail}")
    result: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    return result


def run(command: list[str], env: dict[str, str], what: str, timeout: float) -> dict[str, Any]:
    """Run a probe; its output goes to files (a sync run may print much), its result is
    the marker line."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        completed = subprocess.run(  # noqa: PLW1510 - the exit status is checked in _result
            command, env=env, stdout=out, stderr=err, timeout=timeout, cwd=tempfile.gettempdir()
        )
        out.seek(0)
        err.seek(0)
        return _result(out.read(), err.read(), completed.returncode, what)


def probe(
    spec: dict[str, Any], env: dict[str, str], what: str, timeout: float = 120, *, script: Path = PROBE
) -> dict[str, Any]:
    """Run ``script`` (a probe taking a SPEC file: :data:`PROBE`, :data:`PROBE_PUBLISHER`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
        path = Path(handle.name)
    try:
        return run([str(LAMBDA_PYTHON), "-s", "-P", str(script), str(path)], env, what, timeout)
    finally:
        path.unlink(missing_ok=True)


def probe_batch(
    items_path: Path, table: str, env: dict[str, str], mode: str = "batch", *, limit: int = 0, timeout: float = 1800
) -> dict[str, Any]:
    command = [str(LAMBDA_PYTHON), "-s", "-P", str(PROBE_BATCH), str(items_path), table, mode]
    if limit:
        command.append(str(limit))
    return run(command, env, f"bare {mode} writes", timeout)
