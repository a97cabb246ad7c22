"""`sam build`'s output runs where Lambda runs it: Python 3.13 with boto3 and nothing else.

A dev virtualenv hides a dependency the layer forgot (moto pulls in aws-xray-sdk, for
example); here every import the handlers make must come from the built function and
the built layer, exactly as in /var/task and /opt/python on Lambda.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools import REPO_ROOT
from devtools.dynamodb_local import DynamoDBLocal
from devtools.fake_nxcloud import FakeNxcloud, generate_records
from devtools.recording_host import RecordingHost
from devtools.s3_local import LocalS3
from devtools.template import create_tables
from tests.conftest import ALL_FUNCTIONS, EVENTS, table_names

PUSH_KIND_OF = {
    "PnsCallResultFunction": "pns_call_result",
    "PnsBindingNotExistFunction": "pns_binding_not_exist",
    "CcReportFunction": "cc_report",
}

pytestmark = [pytest.mark.build, pytest.mark.dynamodb_local]

SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
LAMBDA_PYTHON = REPO_ROOT / ".venv-lambda" / "bin" / "python"
# boto3 and what it depends on: what Lambda's python3.13 runtime adds to the interpreter.
RUNTIME_PACKAGES = {"boto3", "botocore", "jmespath", "s3transfer", "python-dateutil", "six", "urllib3", "pip"}

RUN_HANDLER = """
import json, sys
function_dir, event_path, *layer_dirs = sys.argv[1:]
# Lambda's order: the function code, then the layers, then the runtime's packages.
sys.path[:0] = [function_dir, *layer_dirs]
import app
import nxcloud_cdr, pydantic, aws_lambda_powertools
class Context:
    function_name = "built"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:built"; aws_request_id = "r-1"
with open(event_path) as handle:
    event = json.load(handle)
context = Context()
context.get_remaining_time_in_millis = lambda: 300_000
response = app.handler(event, context)
origins = {name: getattr(sys.modules.get(name), "__file__", None) for name in ("app", "nxcloud_cdr", "pydantic",
           "aws_lambda_powertools", "requests", "urllib3", "boto3", "botocore", "jmespath")}
payloads = sorted(name for name in sys.modules if name.startswith("nxcloud_cdr.payloads."))
print("RESULT " + json.dumps({"response": response, "origins": origins, "payloads": payloads}))
"""


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAM.exists():
        pytest.fail("aws-sam-cli is not installed in .venv-sam: run `make deps`")
    target = tmp_path_factory.mktemp("sam-build")
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    # sam build runs the python3.13 it finds first on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    completed = subprocess.run(
        [str(SAM), "build", "--build-dir", str(target), "--template-file", str(REPO_ROOT / "template.yaml")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return target


@pytest.fixture(scope="module")
def engine() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as running:
        yield running


def test_lambda_stand_in_interpreter_has_boto3_alone():
    listed = subprocess.run(
        [str(LAMBDA_PYTHON), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert "boto3" in names
    assert names <= RUNTIME_PACKAGES, f"not in Lambda's runtime: {names - RUNTIME_PACKAGES}"


LAYERS = ("SharedLayer", "SyncLayer")


def installed(layer: Path) -> set[str]:
    return {path.name.split("-")[0].lower().replace("_", "-") for path in layer.glob("*.dist-info")}


def test_build_output_has_the_layer_dependencies_and_nothing_the_runtime_has(build_dir: Path):
    shared, sync = (build_dir / name / "python" for name in LAYERS)
    assert (shared / "nxcloud_cdr" / "receiver.py").is_file()
    assert not (shared / "nxcloud_cdr" / "cli.py").exists()  # the operator tool is no function's
    assert installed(shared) == {
        "aws-lambda-powertools",
        "pydantic",
        "pydantic-core",
        "annotated-types",
        "typing-extensions",
        "typing-inspection",
    }
    # requests for the sync alone; urllib3 is the runtime's.
    assert installed(sync) == {"requests", "idna", "charset-normalizer", "certifi"}
    for function in ALL_FUNCTIONS:
        assert (build_dir / function / "app.py").is_file()


CHECK_BYTECODE = """
import importlib.util, pathlib, sys
layer = pathlib.Path(sys.argv[1])
sources = [path for path in layer.rglob("*.py") if "__pycache__" not in path.parts and path.parent.name != "bin"]
problems = []
for source in sources:
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    if not cached.exists():
        problems.append(f"no .pyc: {source}")
        continue
    data = cached.read_bytes()
    flags = int.from_bytes(data[4:8], "little")
    if data[:4] != importlib.util.MAGIC_NUMBER:
        problems.append(f"not this Python's bytecode: {cached}")
    elif flags != 0b01:  # hash-based, not checked against the source: file times do not matter
        problems.append(f"not an unchecked-hash .pyc: {cached}")
    elif data[8:16] != importlib.util.source_hash(source.read_bytes()):
        problems.append(f"stale .pyc: {cached}")
print(len(sources))
print("\\n".join(problems[:20]))
"""


@pytest.mark.parametrize(("layer", "modules"), [("SharedLayer", 150), ("SyncLayer", 30)])
def test_layer_ships_valid_bytecode_for_every_module(build_dir: Path, layer: str, modules: int):
    # Lambda's /opt is read-only: without these every cold start compiles the layer from source.
    checked = subprocess.run(
        [str(LAMBDA_PYTHON), "-s", "-c", CHECK_BYTECODE, str(build_dir / layer / "python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    count, problems = int(checked[0]), [line for line in checked[1:] if line]
    assert count > modules and problems == []


def run_built(build_dir: Path, function: str, event_file: str, env: dict[str, str]) -> dict:
    """Invoke a built handler in the boto3-only interpreter, with the layers the
    template gives it; its response, where each package was imported from, and which
    payload modules it loaded."""
    layer_dirs = [build_dir / "SharedLayer" / "python"]
    if function == "CcCdrSyncFunction":
        layer_dirs.append(build_dir / "SyncLayer" / "python")
    base = {
        "PATH": os.environ["PATH"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [
            str(LAMBDA_PYTHON),
            "-s",
            "-c",
            RUN_HANDLER,
            str(build_dir / function),
            str(EVENTS / event_file),
            *map(str, layer_dirs),
        ],
        cwd=build_dir,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    [line] = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["origins"]["app"].startswith(str(build_dir / function))
    origins = result["origins"]
    for module in ("nxcloud_cdr", "pydantic", "aws_lambda_powertools"):
        assert origins[module].startswith(str(layer_dirs[0])), (module, origins[module])
    # What the runtime provides comes from the runtime; boto3 itself is never loaded
    # (botocore alone builds the clients: boto3 costs ~50 ms of cold start).
    for module in ("botocore", "urllib3", "jmespath"):
        assert origins[module] is None or origins[module].startswith(str(LAMBDA_PYTHON.parent.parent)), origins
    assert origins["boto3"] is None
    if function == "CcCdrSyncFunction":
        assert origins["requests"].startswith(str(layer_dirs[1]))
        assert result["payloads"] == ["nxcloud_cdr.payloads.cc_cdr"]
    elif function == "ChangePublisherFunction":
        # Reads the item's calls with the item's own kind alone (here a PNS call result).
        assert origins["requests"] is None
        assert result["payloads"] == ["nxcloud_cdr.payloads.pns_call_result"]
    elif function == "RecordingArchiverFunction":
        # The standard library downloads; no model is built (links are read from raw).
        assert origins["requests"] is None
        assert result["payloads"] == []
    else:
        # A push function loads its own kind's model alone, and no HTTP library of its own.
        assert origins["requests"] is None
        assert result["payloads"] == [f"nxcloud_cdr.payloads.{PUSH_KIND_OF[function]}"]
    return result["response"]


def table_env(engine: DynamoDBLocal) -> tuple[dict[str, str], Any]:
    names = table_names()
    client = boto3.client("dynamodb", endpoint_url=engine.endpoint)
    create_tables(client, names)
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": engine.endpoint,
        "TABLE_NAME": names["CallRecordsTable"],
        "QUARANTINE_TABLE_NAME": names["QuarantineTable"],
        "NXCLOUD_TIMEZONE": "+08:00",
    }
    return env, client


@pytest.mark.parametrize(
    ("function", "event_file"),
    [
        ("PnsCallResultFunction", "pns-call-result.json"),
        ("PnsBindingNotExistFunction", "pns-binding-not-exist.json"),
        ("CcReportFunction", "cc-report.json"),
    ],
)
def test_built_push_handler_stores_an_event(build_dir: Path, engine: DynamoDBLocal, function: str, event_file: str):
    env, client = table_env(engine)

    response = run_built(build_dir, function, event_file, env | {"PUSH_TOKEN": "local-example-token"})

    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["outcome"] == "stored"
    assert client.scan(TableName=env["TABLE_NAME"])["Count"] == 1


def test_built_sync_handler_pulls_from_nxcloud(build_dir: Path, engine: DynamoDBLocal):
    env, client = table_env(engine)
    now_ms = int(time.time() * 1000)
    with FakeNxcloud(generate_records(120, now_ms - 2 * 3600 * 1000, 3600 * 1000)) as fake:
        response = run_built(
            build_dir,
            "CcCdrSyncFunction",
            "cc-cdr-sync-scheduled.json",
            env
            | {
                "NXCLOUD_API_BASE_URL": fake.base_url,
                "NXCLOUD_ACCESS_KEY": fake.access_key,
                "NXCLOUD_ACCESS_SECRET": fake.access_secret,
            },
        )

    assert (response["status"], response["new"]) == ("complete", 120)
    records = client.scan(
        TableName=env["TABLE_NAME"], FilterExpression="sk = :k", ExpressionAttributeValues={":k": {"S": "cc_cdr"}}
    )
    assert records["Count"] == 120


def test_built_archiver_archives_a_pushed_recording(build_dir: Path, engine: DynamoDBLocal, tmp_path: Path):
    env, client = table_env(engine)
    with RecordingHost() as host, LocalS3() as s3:
        s3.client().create_bucket(Bucket="built-recordings")
        event = json.loads((EVENTS / "pns-call-result.json").read_text())
        body = json.loads(event["body"]) | {"recordFile": host.add("built.mp3", body=b"ID3 built")}
        (tmp_path / "push.json").write_text(json.dumps(event | {"body": json.dumps(body)}))
        response = run_built(
            build_dir, "PnsCallResultFunction", str(tmp_path / "push.json"), env | {"PUSH_TOKEN": "local-example-token"}
        )
        assert response["statusCode"] == 200

        archive_env = env | {
            "RECORDINGS_BUCKET": "built-recordings",
            "AWS_ENDPOINT_URL_S3": s3.endpoint,
            "RECORDING_HOSTS": "localhost",
            "RECORDING_ALLOWED_NETWORKS": "127.0.0.0/8",
            "RECORDING_CA_FILE": host.ca_file,
        }
        answer = run_built(build_dir, "RecordingArchiverFunction", "recording-archiver-stream.json", archive_env)

        assert answer == {"batchItemFailures": []}
        item = client.get_item(
            TableName=env["TABLE_NAME"], Key={"pk": {"S": f"ID#{body['callId']}"}, "sk": {"S": "pns_call_result"}}
        )["Item"]
        assert item["recordingState"] == {"S": "archived"}
        key = item["recordings"]["M"]["call"]["M"]["s3Key"]["S"]
        assert s3.client().get_object(Bucket="built-recordings", Key=key)["Body"].read() == b"ID3 built"


def test_the_benchs_cold_start_and_import_sections_run_on_every_built_function(build_dir: Path, capsys):
    """`make bench`'s probes once, quick (issue 19: the archiver's cold start ran without
    its bucket and the section failed from a fresh clone)."""
    from bench import run

    arguments = ["--build-dir", str(build_dir), "--runs", "1", "--nopyc-runs", "1", "--engine-warmup", "10"]
    skipped = ",".join(section for section in run.SECTIONS if section not in ("cold", "nopyc"))
    saved = dict(os.environ)  # the bench points this process at its own engine: not the next tests
    try:
        run.main([*arguments, "--skip", skipped])  # exits 1 when a section could not be measured
    finally:
        os.environ.clear()
        os.environ.update(saved)

    table = capsys.readouterr().out
    assert "ERROR" not in table
    for function in ("RecordingArchiverFunction", "CcCdrSyncFunction", "PnsCallResultFunction"):
        assert function in table


def test_built_publisher_puts_a_stored_calls_change_on_the_bus_and_in_the_lake(
    build_dir: Path, engine: DynamoDBLocal, tmp_path: Path
):
    from devtools.streams import lambda_json
    from tests.unit.test_publisher import Sinks

    env, client = table_env(engine)
    response = run_built(
        build_dir, "PnsCallResultFunction", "pns-call-result.json", env | {"PUSH_TOKEN": "local-example-token"}
    )
    assert response["statusCode"] == 200
    [item] = client.scan(TableName=env["TABLE_NAME"])["Items"]
    record = {
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": {"pk": item["pk"], "sk": item["sk"]}, "NewImage": item, "SequenceNumber": "1"},
    }
    (tmp_path / "stream.json").write_text(json.dumps({"Records": [record]}, default=lambda_json))
    # moto's server for the bus and the delivery stream, as `make local` runs them.
    with LocalS3() as aws:
        endpoints = {f"AWS_ENDPOINT_URL_{name}": aws.endpoint for name in ("EVENTBRIDGE", "FIREHOSE", "S3", "SQS")}
        saved = dict(os.environ)
        os.environ.update(endpoints)
        try:
            sinks = Sinks(bus="built-calls", stream="built-call-changes", bucket="built-lake").create()
            answer = run_built(
                build_dir,
                "ChangePublisherFunction",
                str(tmp_path / "stream.json"),
                env | endpoints | {"EVENT_BUS_NAME": sinks.bus, "DELIVERY_STREAM_NAME": sinks.stream},
            )
            events, rows = sinks.received(), sinks.rows()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    assert answer == {"batchItemFailures": []}
    [event] = events
    assert event["detail-type"] == "Call Record Created" and event["source"] == "nxcloud.cdr"
    [row] = rows
    assert row["idempotency_key"] == event["detail"]["metadata"]["idempotencyKey"]
