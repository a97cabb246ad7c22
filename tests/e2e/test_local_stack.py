"""End to end, as a user runs it: `make local`, real HTTP requests, the `nxcdr` tool,
Ctrl-C, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools import REPO_ROOT
from devtools.dynamodb_local import free_port
from tests.conftest import EVENTS

pytestmark = [pytest.mark.dynamodb_local]


@dataclass
class Running:
    process: subprocess.Popen[str]
    api: str
    env: dict[str, str]
    ports: tuple[int, ...]
    output: list[str]


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def processes_mentioning(text: str) -> list[str]:
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if text in line and "ps -eo" not in line]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    work = tmp_path_factory.mktemp("local")
    ports = tuple(free_port() for _ in range(6))
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "TABLE_", "PUSH_", "NXCLOUD_"))
    }
    env |= {
        "LOCAL_API_PORT": str(ports[0]),
        "LOCAL_DYNAMODB_PORT": str(ports[1]),
        "LOCAL_NXCLOUD_PORT": str(ports[2]),
        "LOCAL_S3_PORT": str(ports[3]),
        "LOCAL_RECORDINGS_PORT": str(ports[4]),
        # Any free port when unset, but the developer's shell may set it.
        "LOCAL_LAKE_PORT": str(ports[5]),
        "NXCDR_LOCAL_ENV": str(work / "local.env"),
        # The lake and the events' sink are beside it (work/lake, work/events), not yours.
        "NXCDR_LOCAL_STATE": str(work / "stack.json"),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        ["make", "--no-print-directory", "local"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    output: list[str] = []
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            pytest.fail("make local exited:\n" + "".join(output))
        output.append(line)
        if "./nxcdr --help" in line:  # the last line of the banner
            break
    else:
        pytest.fail("make local did not start:\n" + "".join(output))
    running = Running(process, f"http://127.0.0.1:{ports[0]}", env, ports, output)
    yield running
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def nxcdr(stack: Running, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO_ROOT / "nxcdr"), *args], env=stack.env, capture_output=True, text=True, timeout=300, check=False
    )


def nxcdr_json(stack: Running, *args: str):
    completed = nxcdr(stack, "--json", *args)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def payload(name: str) -> bytes:
    return (EVENTS / "payloads" / name).read_bytes()


def test_start_prints_urls_token_and_settings(stack):
    text = "".join(stack.output)
    assert f"{stack.api}/v1/pns/call-result/local-example-token" in text
    assert "PUSH_TOKEN=local-example-token" in text
    assert Path(stack.env["NXCDR_LOCAL_ENV"]).read_text().count("=") == 3  # written with safe defaults


def test_pushes_duplicates_bad_bodies_and_wrong_tokens_over_http(stack):
    token_url = stack.api + "/v1/{}/local-example-token"
    assert post(token_url.format("pns/call-result"), payload("pns-call-result.json")) == (
        200,
        {"ok": True, "outcome": "stored", "id": "1604763745256783872"},
    )
    assert post(token_url.format("pns/call-result"), payload("pns-call-result.json"))[1]["outcome"] == "duplicate"
    assert post(token_url.format("pns/binding-not-exist"), payload("pns-binding-not-exist.json"))[0] == 200
    assert post(token_url.format("cc/report"), payload("cc-report.json"))[0] == 200
    status, answer = post(token_url.format("pns/call-result"), payload("bad-body.txt"))
    assert (status, answer["error"]) == (400, "invalid_json")
    status, answer = post(stack.api + "/v1/cc/report/wrong-token", payload("cc-report.json"))
    assert (status, answer["error"]) == (403, "forbidden")
    status, _ = post(stack.api + "/v1/no/such/route", b"{}")
    assert status == 404

    [call] = nxcdr_json(stack, "show", "1604763745256783872")
    assert call["kind"] == "pns_call_result" and call["raw"] == payload("pns-call-result.json").decode()
    assert [item["nxcloudId"] for item in nxcdr_json(stack, "number", "+852 3575 7584")["items"]] == [
        "1604763745256783872"
    ]
    bindings = nxcdr_json(stack, "binding", "--bind-id", "69f1d1be1a82204c6049b4a2797ed0af")["items"]
    assert [item["nxcloudId"] for item in bindings] == ["1604763745256783872"]
    listed = nxcdr_json(stack, "list", "--kind", "cc_report", "--since", "2023-11-01", "--to", "2023-12-01")
    assert [item["nxcloudId"] for item in listed["items"]] == ["c7a1f0e2b3d44e5f8a9b0c1d2e3f4a5b"]
    table = nxcdr(stack, "list", "--since", "2022-12-01", "--to", "2023-01-01").stdout
    assert "callStartUtc" in table.splitlines()[0] and "1604763745256783872" in table


def test_quarantine_listing_and_replay(stack):
    post(stack.api + "/v1/pns/call-result/local-example-token", b'{"callId": ""}')
    items = nxcdr_json(stack, "quarantine")["items"]
    missing = next(item for item in items if item["reason"] == "missing_id")

    replayed = nxcdr(stack, "--json", "replay", missing["pk"], "--yes", "--force")

    assert replayed.returncode == 2  # still bad: answered 400 again, and kept
    assert json.loads(replayed.stdout)["status"] == 400
    after = next(item for item in nxcdr_json(stack, "quarantine")["items"] if item["pk"] == missing["pk"])
    assert after["replayStatus"] == 400 and after["attempts"] == 2


def stand_in_rows(stack: Running) -> list[dict]:
    """The stand-in NXCLOUD's records (the last two days), read from its CDR page API."""
    from nxcloud_cdr.nxcloud_api import NxcloudClient

    from devtools.fake_nxcloud import DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET

    client = NxcloudClient(f"http://127.0.0.1:{stack.ports[2]}", DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET)
    now = int(time.time())
    rows: list[dict] = []
    for page in range(1, 10):
        found = client.cdr_page(now - 3 * 86_400, now, page)
        rows.extend(found)
        if len(found) < 100:
            return rows
    return rows


def call_log(stack: Running, row: dict) -> tuple[int, dict]:
    """NXCLOUD's call-log callback of a call, as it ends: before the recording link exists."""
    body = json.dumps(row | {"recordUrl": ""} if row.get("recordUrl") else row).encode()
    return post(stack.api + "/v1/cc/call-log/local-example-token", body, {"token": "local-example-token"})


def test_call_log_callbacks_before_the_sync(stack):
    rows = stand_in_rows(stack)
    assert len(rows) == 300
    for row in rows[:3]:
        assert call_log(stack, row) == (200, {"ok": True, "outcome": "stored", "id": row["callId"]})
    status, answer = post(stack.api + "/v1/cc/call-log/local-example-token", json.dumps(rows[0]).encode())
    assert (status, answer["error"]) == (403, "forbidden")  # no token header


def test_sync_and_backfill_against_the_stand_in(stack):
    scheduled = nxcdr_json(stack, "sync")
    assert scheduled["mode"] == "scheduled" and scheduled["status"] == "complete"

    backfill = nxcdr_json(stack, "sync", "--since", "3d")
    assert backfill["status"] == "complete"
    # Every record of the stand-in, each once: the three the callback stored first merged.
    assert scheduled["new"] + backfill["new"] == 297

    records = nxcdr_json(stack, "list", "--kind", "cc_cdr", "--since", "3d", "--limit", "1000")["items"]
    assert len(records) == len({item["nxcloudId"] for item in records}) == 300
    again = nxcdr_json(stack, "sync", "--since", "3d")
    assert (again["new"], again["updated"]) == (0, 0)


def test_call_log_callbacks_after_the_sync_and_one_item_per_call(stack):
    rows = stand_in_rows(stack)
    for row in rows[3:6]:
        status, answer = call_log(stack, row)
        assert status == 200 and answer["outcome"] in ("kept", "duplicate")
    # Callback first or sync first: one item per call, from both sources, with the
    # recording only the sync's copy had.
    for row in rows[:6]:
        [item] = nxcdr_json(stack, "show", row["callId"])
        assert item["sources"] == ["push", "sync"], row["callId"]
        assert item["fields"]["recordUrl"] == (row["recordUrl"] or "")
        assert len(item["versions"]) == (2 if row["recordUrl"] else 0)
    shown = nxcdr(stack, "show", rows[0]["callId"]).stdout
    assert "sources: push, sync" in shown


def test_a_function_invoked_as_the_docs_show_without_docker(stack):
    """`make invoke FN=... EVENT=...`, as written in docs/development.md: no AWS CLI, no credentials
    (the environment has none: the fixture drops every AWS_ variable)."""
    completed = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "invoke",
            "FN=PnsCallResultFunction",
            "EVENT=events/pns-call-result-unanswered.json",
        ],
        cwd=REPO_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    response = json.loads(completed.stdout[completed.stdout.index("{") :])
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["id"] == "1604763999100000000"


def test_make_invoke_without_a_running_stack_says_so_in_one_line():
    env = dict(os.environ, LOCAL_API_PORT=str(free_port()))
    completed = subprocess.run(
        ["make", "--no-print-directory", "invoke", "FN=PnsCallResultFunction", "EVENT=events/pns-call-result.json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode != 0
    assert "no local stack answers" in completed.stderr and "Traceback" not in completed.stderr


def until(condition, seconds: float = 60.0, last=None):
    """``condition``'s first true value within ``seconds``; else the test fails, with
    what ``last`` gives (the last output seen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail("not within the time allowed" + (f"; last seen:\n{last()}" if last else ""))


def test_a_pushed_recording_is_archived_into_the_local_s3(stack, tmp_path):
    state = json.loads(Path(stack.env["NXCDR_LOCAL_STATE"]).read_text())
    body = json.loads(json.loads((EVENTS / "pns-call-result.json").read_text())["body"])
    body |= {"callId": "e2e-recording-1", "recordFile": state["recordingHost"] + "pns/e2e-recording-1.mp3"}
    status, _ = post(stack.api + "/v1/pns/call-result/local-example-token", json.dumps(body).encode())
    assert status == 200

    def archived():
        [item] = nxcdr_json(stack, "show", "e2e-recording-1")
        return item if item.get("recordingState") == "archived" else None

    item = until(archived)
    key = item["recordings"]["call"]["s3Key"]
    assert key == "recordings/2022/12/19/pns_call_result/e2e-recording-1.mp3"
    [saved] = nxcdr_json(stack, "recording", "e2e-recording-1", "--download", str(tmp_path))
    data = Path(saved["file"]).read_bytes()
    assert data.startswith(b"ID3") and len(data) == item["recordings"]["call"]["bytes"]
    printed = nxcdr(stack, "recording", "e2e-recording-1")
    assert printed.returncode == 0 and f"/nxcloud-cdr-recordings/{key}?" in printed.stdout
    with urllib.request.urlopen(printed.stdout.splitlines()[1], timeout=30) as response:  # the presigned URL
        assert response.read() == data


def test_a_sample_link_off_the_local_allow_list_is_refused_listed_and_never_fetched(stack):
    # NXCLOUD's own sample (its link on remote.record.nxcloud.com, off the local list).
    event = json.loads((EVENTS / "pns-call-result.json").read_text())
    body = json.loads(event["body"]) | {"callId": "e2e-refused-1"}
    assert post(stack.api + "/v1/pns/call-result/local-example-token", json.dumps(body).encode())[0] == 200

    def failed():
        items = nxcdr_json(stack, "recordings", "--failed")["items"]
        return [item for item in items if item["nxcloudId"] == "e2e-refused-1"]

    [item] = until(failed)
    assert item["recordings"]["call"]["reason"] == "refused"
    listing = nxcdr(stack, "recordings").stdout
    assert "e2e-refused-1" in listing and "not on the allow-list" in listing


def test_the_syncs_recordings_are_archived(stack):
    rows = [row for row in stand_in_rows(stack) if row.get("recordUrl")]
    assert rows

    def all_archived():
        states = [
            nxcdr_json(stack, "show", row["callId"], "--kind", "cc_cdr")[0].get("recordingState") for row in rows[:10]
        ]
        return states if set(states) == {"archived"} else None

    until(all_archived, 120)


def test_records_from_before_the_archiver_are_backfilled(stack):
    import boto3

    state = json.loads(Path(stack.env["NXCDR_LOCAL_STATE"]).read_text())
    body = json.loads(json.loads((EVENTS / "pns-call-result.json").read_text())["body"])
    body |= {"callId": "e2e-old-1", "recordFile": None}
    assert post(stack.api + "/v1/pns/call-result/local-example-token", json.dumps(body).encode())[0] == 200
    # Its body given a link, as a record stored before the archiver existed holds one: no pending mark.
    body["recordFile"] = state["recordingHost"] + "pns/e2e-old-1.mp3"
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=state["dynamodb"],
        region_name="us-east-1",
        aws_access_key_id="l",
        aws_secret_access_key="l",
    )
    dynamodb.update_item(
        TableName=state["tables"]["CallRecordsTable"],
        Key={"pk": {"S": "ID#e2e-old-1"}, "sk": {"S": "pns_call_result"}},
        UpdateExpression="SET #raw = :raw, sortKey = :sort",
        ExpressionAttributeNames={"#raw": "raw"},
        ExpressionAttributeValues={
            ":raw": {"S": json.dumps(body)},
            ":sort": {"S": "2022-12-19T06:50:11Z#pns_call_result#e2e-old-1"},
        },
    )
    assert "recordingState" not in nxcdr_json(stack, "show", "e2e-old-1")[0]

    completed = nxcdr(stack, "recordings", "backfill", "--yes", "--limit", "10000")
    assert completed.returncode == 0, completed.stderr
    assert "records handed to the archiver again" in completed.stdout and not completed.stdout.startswith("0 "), (
        completed.stdout
    )

    until(lambda: nxcdr_json(stack, "show", "e2e-old-1")[0].get("recordingState") == "archived")


# The README's demo of the events and the lake, without `nxcdr lake flush`: the local
# delivery stream writes Parquet within a minute of a push by itself.
DEMO_CALL = f"e2e-lake-{uuid.uuid4().hex[:12]}"


def test_a_pushed_call_is_an_event_and_a_row_of_calls_within_a_minute(stack):
    import jsonschema

    body = json.loads(payload("pns-call-result.json")) | {"callId": DEMO_CALL}
    pushed = time.monotonic()
    status, answer = post(stack.api + "/v1/pns/call-result/local-example-token", json.dumps(body).encode())
    assert (status, answer["id"]) == (200, DEMO_CALL)
    last: dict[str, str] = {}

    def seen(*args: str):
        completed = nxcdr(stack, "--json", *args)
        shown = completed.stdout if len(completed.stdout) < 4000 else completed.stdout[:4000] + "\n[...]\n"
        last["output"] = f"$ ./nxcdr --json {' '.join(args)}\n{shown}{completed.stderr}"
        assert completed.returncode == 0, last["output"]
        return completed.stdout

    def created():
        events = [json.loads(line) for line in seen("events", "--since", "10m").splitlines()]
        mine = [event for event in events if event["detail"]["call"]["call_id"] == DEMO_CALL]
        return [event for event in mine if event["detail-type"] == "Call Record Created"]

    [event] = until(created, 60 - (time.monotonic() - pushed), lambda: last["output"])
    schema = json.loads((REPO_ROOT / "schemas" / "call-change-event-v1.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(event["detail"])
    assert (event["source"], event["detail"]["call"]["kind"]) == ("nxcloud.cdr", "pns_call_result")

    def row():
        return [call for call in json.loads(seen("sql", "SELECT * FROM calls")) if call["call_id"] == DEMO_CALL]

    [call] = until(row, 60 - (time.monotonic() - pushed), lambda: last["output"])
    assert call["kind"] == "pns_call_result"
    assert (call["caller_number"], call["callee_number"], call["did_number"]) == (
        body["caller"],
        body["callee"],
        body["did"],
    )
    assert (call["duration_sec"], call["bind_id"], call["customer_bind_id"]) == (
        body["duration"],
        body["bindId"],
        body["customerBindId"],
    )
    assert call["call_start_utc"] == datetime.fromtimestamp(body["startAt"], UTC).replace(tzinfo=None).isoformat()
    assert call["sources"] == ["push"]


def test_ctrl_c_stops_everything(stack):
    os.killpg(stack.process.pid, signal.SIGINT)
    stack.process.wait(timeout=30)

    assert not any(port_open(port) for port in stack.ports)
    assert processes_mentioning(f"-port {stack.ports[1]}") == []  # no DynamoDB Local left
    assert processes_mentioning("devtools.local_stack") == []
    assert not Path(stack.env["NXCDR_LOCAL_STATE"]).exists()


def test_the_lake_is_still_queried_after_the_stack_stopped(stack):
    """Its state file is gone; `sql`, `events` and `lake flush` read the lake it left,
    and what needs the stack says in one line that it is not running."""
    assert stack.process.poll() is not None  # stopped by the test before
    completed = nxcdr(stack, "--json", "sql", f"SELECT call_id FROM calls WHERE call_id = '{DEMO_CALL}'")
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == [{"call_id": DEMO_CALL}]
    events = nxcdr(stack, "--json", "events", "--since", "1h")
    assert events.returncode == 0 and DEMO_CALL in events.stdout
    flushed = nxcdr(stack, "lake", "flush")
    assert flushed.returncode == 0 and flushed.stdout.startswith("0 rows written"), flushed  # the stop wrote them
    listed = nxcdr(stack, "list")
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1 and "make local" in listed.stderr
