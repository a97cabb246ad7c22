"""The whole product on this machine, with no AWS account and no Docker (`make local`).

- DynamoDB Local (the real engine) with the tables of template.yaml;
- the HTTP API's routes on http://127.0.0.1:3000, each request turned into the API
  Gateway HTTP API (2.0) event Lambda would receive and given to the real handler, with
  the layer on the path and the environment from the template;
- Lambda's Invoke API (``POST /2015-03-31/functions/<name>/invocations``) on the same
  port, so that ``aws lambda invoke --endpoint-url`` and the ``nxcdr`` tool run the
  sync (and replays) locally exactly as against a deployed stack;
- the stand-in NXCLOUD CDR page API, which the local sync reads;
- the recording archiver on the records table's stream (DynamoDB Local's, with the
  template's filter), fetching from a stand-in of NXCLOUD's recording storage (HTTPS on
  loopback, its own CA) into S3 (moto's server on loopback);
- the change publisher on the same stream, putting events on a stand-in of the stack's
  EventBridge bus (a sink file, ``.local/events/events.jsonl``) and rows into a stand-in
  of its Firehose delivery stream (Parquet under ``.local/lake/``, within a minute or at
  once with ``nxcdr lake flush``), both served by devtools/lake_local.py.

Secrets come from ``local.env`` (git-ignored; created with local defaults on first run).
Ctrl-C stops everything, DynamoDB Local's Java process included.
"""

from __future__ import annotations

import argparse
import base64
import errno
import importlib.util
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import boto3

from . import REPO_ROOT
from .dynamodb_local import DynamoDBLocal
from .events import http_api_event
from .fake_nxcloud import DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET, FakeNxcloud, generate_records
from .lake_local import LocalLake, default_paths
from .recording_host import RecordingHost
from .s3_local import LocalS3
from .streams import StreamPump
from .template import (
    Route,
    create_tables,
    function_environment,
    function_timeout,
    http_routes,
    load_template,
    stream_sources,
)

# Both can be moved (the end-to-end test does, so that it never touches yours).
LOCAL_ENV = Path(os.environ.get("NXCDR_LOCAL_ENV") or REPO_ROOT / "local.env")
STATE_FILE = Path(os.environ.get("NXCDR_LOCAL_STATE") or REPO_ROOT / ".local" / "stack.json")
TABLES = {"CallRecordsTable": "nxcloud-cdr-records", "QuarantineTable": "nxcloud-cdr-quarantine"}
RECORDINGS_BUCKET = "nxcloud-cdr-recordings"
# The local stack's name is nxcloud-cdr (its tables' prefix): its bus (template.yaml's
# ChangeEventBus, ${AWS::StackName}-calls) and its delivery stream (lake.yaml's
# ${StackName}-call-changes) are named as a deployed stack's would be.
LOCAL_STACK_NAME = "nxcloud-cdr"
EVENT_BUS = f"{LOCAL_STACK_NAME}-calls"
DELIVERY_STREAM = f"{LOCAL_STACK_NAME}-call-changes"
LOCAL_DEFAULTS = {
    # Local values, safe to print: this stack listens on loopback only.
    "PUSH_TOKEN": "local-example-token",
    "NXCLOUD_ACCESS_KEY": DEFAULT_ACCESS_KEY,
    "NXCLOUD_ACCESS_SECRET": DEFAULT_ACCESS_SECRET,
}
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
Handler = Callable[[dict[str, Any], Any], Any]


def read_local_env(path: Path = LOCAL_ENV) -> dict[str, str]:
    """``local.env`` as a dict, written with the defaults when it does not exist."""
    if not path.exists():
        lines = ["# nxcloud-cdr local settings (git-ignored). `make local` reads them at start."]
        lines += [f"{name}={value}" for name, value in LOCAL_DEFAULTS.items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    values = dict(LOCAL_DEFAULTS)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


@dataclass
class LocalContext:
    function_name: str
    timeout_s: int
    aws_request_id: str
    memory_limit_in_mb: int = 512

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def _load(function: str, code_uri: str, handler: str) -> Handler:
    module_name, attribute = handler.rsplit(".", 1)
    path = REPO_ROOT / code_uri / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(f"local_{function}", path)
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded: Handler = getattr(module, attribute)
    return loaded


class LocalStack:
    def __init__(
        self,
        *,
        api_port: int,
        dynamodb_port: int,
        nxcloud_port: int | None,
        records: int,
        s3_port: int = 0,
        recordings_port: int = 0,
        lake_port: int = 0,
    ) -> None:
        self.api_port = api_port
        self.lake = LocalLake(
            default_paths(STATE_FILE.parent), lake_port, bus_names=[EVENT_BUS], stream_names=[DELIVERY_STREAM]
        )
        self.dynamodb = DynamoDBLocal(dynamodb_port)
        self.s3 = LocalS3(s3_port or None)
        self.recording_host = RecordingHost(recordings_port)
        self.pumps: list[StreamPump] = []
        self._stop_pumps = threading.Event()
        self.nxcloud_port = nxcloud_port
        self.records = records
        self.fake: FakeNxcloud | None = None
        self.server: HTTPServer | None = None
        self.template = load_template()
        self.routes: list[tuple[re.Pattern[str], Route]] = []
        self.functions: dict[str, tuple[Handler, int]] = {}

    def start(self) -> dict[str, Any]:
        settings = read_local_env()
        self.dynamodb.start()
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.dynamodb.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - DynamoDB Local ignores credentials
        )
        create_tables(client, TABLES, self.template)
        self.s3.start().client().create_bucket(Bucket=RECORDINGS_BUCKET)
        self.recording_host.start()
        self.lake.start()
        if self.nxcloud_port is not None:
            now = int(time.time() * 1000)
            span = 2 * 86_400_000
            self.fake = FakeNxcloud(
                generate_records(self.records, now - span, span, recording_base=self.recording_host.url("cc")),
                access_key=settings["NXCLOUD_ACCESS_KEY"],
                access_secret=settings["NXCLOUD_ACCESS_SECRET"],
                port=self.nxcloud_port,
            ).start()
        self._configure_environment(settings)
        for route in http_routes(self.template):
            pattern = re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(route.path)) + "$")
            self.routes.append((pattern, route))
        for name, resource in self.template["Resources"].items():
            if resource["Type"] == "AWS::Serverless::Function":
                props = resource["Properties"]
                self.functions[name] = (
                    _load(name, props["CodeUri"], props["Handler"]),
                    function_timeout(name, self.template),
                )
        self._start_pumps()
        self.lake.start_timer()
        self.server = HTTPServer(("127.0.0.1", self.api_port), self._request_handler())
        state = {
            "api": f"http://127.0.0.1:{self.server.server_address[1]}",
            "dynamodb": self.dynamodb.endpoint,
            "nxcloud": self.fake.base_url if self.fake else None,
            "tables": TABLES,
            "functions": {name: name for name in self.functions},
            "pushToken": settings["PUSH_TOKEN"],
            "timezone": os.environ.get("NXCLOUD_TIMEZONE", "+08:00"),
            "s3": self.s3.endpoint,
            "recordingsBucket": RECORDINGS_BUCKET,
            "recordingHost": self.recording_host.url(""),
            "lake": {
                "endpoint": self.lake.endpoint,
                "dir": str(self.lake.paths.lake),
                "eventsFile": str(self.lake.paths.events),
                "eventBus": EVENT_BUS,
                "deliveryStream": DELIVERY_STREAM,
            },
        }
        STATE_FILE.parent.mkdir(exist_ok=True)
        STATE_FILE.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        return state

    def _configure_environment(self, settings: dict[str, str]) -> None:
        # One process stands in for every function: the union of their environments
        # (they differ only in variables the others do not read).
        resources = {
            **TABLES,
            "PushTokenSecret": "",
            "NxcloudApiCredentialsSecret": "",
            "RecordingsBucket": RECORDINGS_BUCKET,
            "RecordingFailuresQueue": "",  # no queue locally: the items say what failed
            "ChangeEventBus": EVENT_BUS,
            "PhoneNumberSaltSecret": "",  # numbers in full locally (PhoneNumbers' default)
            "AWS::StackName": LOCAL_STACK_NAME,
        }
        environment: dict[str, str] = {}
        for name, resource in self.template["Resources"].items():
            if resource["Type"] == "AWS::Serverless::Function":
                environment.update(function_environment(name, resources, self.template))
        environment.update(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "PUSH_TOKEN": settings["PUSH_TOKEN"],
                "NXCLOUD_ACCESS_KEY": settings["NXCLOUD_ACCESS_KEY"],
                "NXCLOUD_ACCESS_SECRET": settings["NXCLOUD_ACCESS_SECRET"],
                "AWS_ENDPOINT_URL_S3": self.s3.endpoint,
                # The stand-in recording host alone (on loopback: allowed here only). NXCLOUD's
                # own hosts are off the list: the samples' links are refused at once, not
                # retried against a network this machine may not have.
                "RECORDING_HOSTS": "localhost",
                "RECORDING_ALLOWED_NETWORKS": "127.0.0.0/8",
                "RECORDING_CA_FILE": self.recording_host.ca_file,
                # The bus and the delivery stream: the stand-ins (devtools/lake_local.py);
                # the lake is on locally, whatever LakeEnabled's default. The SDK's
                # variable is named after the service's id: EventBridge, not events.
                "AWS_ENDPOINT_URL_EVENTBRIDGE": self.lake.endpoint,
                "AWS_ENDPOINT_URL_FIREHOSE": self.lake.endpoint,
                "EVENT_BUS_NAME": EVENT_BUS,
                "DELIVERY_STREAM_NAME": DELIVERY_STREAM,
            }
        )
        if self.fake is not None:
            environment["NXCLOUD_API_BASE_URL"] = self.fake.base_url
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update({**environment, **{k: v for k, v in settings.items() if k.isupper()}})

    def _start_pumps(self) -> None:
        """Each stream event source of the template, fed by DynamoDB Local's stream."""
        for source in stream_sources(self.template):
            pump = StreamPump(
                self.dynamodb.endpoint,
                TABLES[source.table],
                source,
                self._stream_handler(source.function),
                lambda: None,
            )
            self.pumps.append(pump)
            threading.Thread(
                target=pump.run, args=(self._stop_pumps,), name=f"stream-{source.function}", daemon=True
            ).start()

    def _stream_handler(self, function: str) -> Handler:
        def handle(event: dict[str, Any], _context: Any) -> Any:
            return self.invoke(function, event)

        return handle

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        handler, timeout = self.functions[function]
        return handler(event, LocalContext(function, timeout, uuid.uuid4().hex))

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        stack = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                sys.stderr.write(f"local api: {self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0]
                invoke = INVOKE_PATH.match(path)
                if self.command == "POST" and invoke:
                    self._invoke(invoke.group(1), body)
                    return
                for pattern, route in stack.routes:
                    match = pattern.match(path)
                    if match and route.method == self.command:
                        event = http_api_event(
                            route,
                            match.groupdict(),
                            body,
                            headers=dict(self.headers.items()),
                            source_ip=self.client_address[0],
                        )
                        try:
                            response = stack.invoke(route.function, event)
                        except Exception:  # API Gateway's answer when the function fails
                            traceback.print_exc()
                            self._send(
                                500, b'{"message":"Internal Server Error"}', {"content-type": "application/json"}
                            )
                            return
                        payload = response.get("body") or ""
                        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
                        self._send(response.get("statusCode", 200), data, response.get("headers") or {})
                        return
                self._send(404, b'{"message":"Not Found"}', {"content-type": "application/json"})

            def _invoke(self, function: str, body: bytes) -> None:
                if function not in stack.functions:
                    message = {"Type": "User", "message": f"Function not found: {function}"}
                    self._send(404, json.dumps(message).encode(), {"x-amzn-ErrorType": "ResourceNotFoundException"})
                    return
                try:
                    result = stack.invoke(function, json.loads(body or b"{}"))
                except Exception as exc:  # what Lambda reports for an unhandled error
                    error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
                    self._send(200, json.dumps(error).encode(), {"X-Amz-Function-Error": "Unhandled"})
                    return
                self._send(200, json.dumps(result, default=str).encode(), {"content-type": "application/json"})

            do_POST = do_GET = do_PUT = _route

        return Handler

    def serve(self) -> None:
        assert self.server is not None
        self.server.serve_forever()

    def stop(self) -> None:
        self._stop_pumps.set()
        if self.server is not None:
            self.server.server_close()
        for stop in (self.recording_host.stop, self.s3.stop, self.lake.stop):  # the lake writes what it buffers
            try:
                stop()
            except Exception as exc:  # one part failing to stop must not leave the others running
                print(f"local stack: stopping: {exc}", flush=True)  # noqa: T201
        if self.fake is not None:
            self.fake.stop()
        self.dynamodb.stop()
        STATE_FILE.unlink(missing_ok=True)


def running_stack(state_file: Path) -> str | None:
    """The push API of the local stack whose state ``state_file`` holds, when it still
    answers there; None when there is none (or it is gone, its file left behind)."""
    try:
        api = str(json.loads(state_file.read_text(encoding="utf-8"))["api"])
        host, port = urlsplit(api).hostname, urlsplit(api).port
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        with socket.create_connection((host or "127.0.0.1", port or 80), timeout=1):
            return api
    except OSError:
        return None


def busy_port(ports: dict[str, int]) -> str | None:
    """The first of ``ports`` (what listens on it: its port) that something already
    listens on, as a one-line message; None when all are free. Checked before anything
    starts, so that a second `make local` says so instead of failing half-way (and
    removing the running stack's state file as it stops)."""
    for what, port in ports.items():
        if not port:
            continue  # any free port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the servers bind: a port left in TIME_WAIT by a stopped stack is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                return (
                    f"local stack: port {port} ({what}) is already in use: a local stack is probably running"
                    " already (Ctrl-C in its terminal stops it); `make local LOCAL_ARGS=--help` says how to"
                    " move this one's ports"
                )
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run nxcloud-cdr locally (no AWS, no Docker).")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_API_PORT", "3000")))
    parser.add_argument("--dynamodb-port", type=int, default=int(os.environ.get("LOCAL_DYNAMODB_PORT", "8000")))
    parser.add_argument("--nxcloud-port", type=int, default=int(os.environ.get("LOCAL_NXCLOUD_PORT", "8089")))
    parser.add_argument("--s3-port", type=int, default=int(os.environ.get("LOCAL_S3_PORT", "4569")))
    parser.add_argument("--recordings-port", type=int, default=int(os.environ.get("LOCAL_RECORDINGS_PORT", "8443")))
    # Any free port by default: what uses it finds it in the state file (and in the
    # functions' environment), so a second stack never collides on it.
    parser.add_argument("--lake-port", type=int, default=int(os.environ.get("LOCAL_LAKE_PORT", "0")))
    parser.add_argument("--no-nxcloud", action="store_true", help="do not start the stand-in NXCLOUD API")
    parser.add_argument("--records", type=int, default=300, help="records the stand-in NXCLOUD serves (last 2 days)")
    arguments = parser.parse_args(argv)
    busy = busy_port(
        {
            "the push API": arguments.port,
            "DynamoDB Local": arguments.dynamodb_port,
            "the NXCLOUD stand-in": 0 if arguments.no_nxcloud else arguments.nxcloud_port,
            "S3": arguments.s3_port,
            "the recording host stand-in": arguments.recordings_port,
            "the bus and delivery stream stand-in": arguments.lake_port,
        }
    )
    if busy:
        raise SystemExit(busy)
    running = running_stack(STATE_FILE)
    if running:
        # Its state file is what ./nxcdr reads: this stack must not take it over (nor
        # remove it when it stops) while that one runs.
        raise SystemExit(
            f"local stack: one is already running (push API {running}, state in {STATE_FILE}): stop it first,"
            " or give this one a state file of its own, NXCDR_LOCAL_STATE=<path> (./nxcdr reads the same variable)"
        )
    stack = LocalStack(
        api_port=arguments.port,
        dynamodb_port=arguments.dynamodb_port,
        nxcloud_port=None if arguments.no_nxcloud else arguments.nxcloud_port,
        records=arguments.records,
        s3_port=arguments.s3_port,
        recordings_port=arguments.recordings_port,
        lake_port=arguments.lake_port,
    )

    def shut_down(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shut_down)
    # A shell starts background jobs with SIGINT ignored, and Python then installs no
    # handler: make Ctrl-C (or `kill -INT`) stop the stack however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        state = stack.start()
        token = state["pushToken"]
        lines = [
            "nxcloud-cdr is running locally (Ctrl-C stops it)",
            f"  push API        {state['api']}",
            *(f"    {route.method} {state['api']}{route.path.replace('{token}', token)}" for _, route in stack.routes),
            f"  Lambda invoke   {state['api']}/2015-03-31/functions/<name>/invocations",
            f"  DynamoDB Local  {state['dynamodb']}  tables {', '.join(TABLES.values())}",
            f"  NXCLOUD stand-in {state['nxcloud'] or '(off)'}",
            f"  recordings      archived from the stand-in host {state['recordingHost']} (any .mp3 path)"
            f" into S3 {state['s3']} bucket {RECORDINGS_BUCKET}",
            f"  change events   bus {EVENT_BUS} -> {state['lake']['eventsFile']}",
            f"  lake            stream {DELIVERY_STREAM} -> Parquet under {state['lake']['dir']}"
            " (within a minute; at once: ./nxcdr lake flush)",
            f"  settings from {LOCAL_ENV.name}: PUSH_TOKEN={token}, "
            f"NXCLOUD_ACCESS_KEY={os.environ['NXCLOUD_ACCESS_KEY']}",
            "  try: ./nxcdr list    ./nxcdr list --kind cc_cdr (after a sync)    ./nxcdr --help",
        ]
        print("\n".join(lines), flush=True)  # noqa: T201
        stack.serve()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        print("nxcloud-cdr local stack stopped", flush=True)  # noqa: T201


if __name__ == "__main__":
    threading.current_thread().name = "local-stack"
    main()
