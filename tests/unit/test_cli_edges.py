"""The operator tool's edges: what an operator may get wrong (a cursor, a backwards range,
a limit, a URL's lifetime, a file that exists, a second `make local`, an unknown deploy
environment, no virtualenv yet) is one line on stderr and a non-zero exit, never a
traceback or AWS's raw text; and `show` says how a record's recordings stand."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from nxcloud_cdr.dynamodb_types import serialise
from nxcloud_cdr.lookups import encode_cursor
from nxcloud_cdr.recording_links import link_id

from devtools import REPO_ROOT
from tests.unit.test_cli import nxcdr
from tools.nxcdr import cli
from tools.nxcdr.recordings import download_name
from tools.nxcdr.target import Target


def one_line(text: str) -> str:
    assert text.count("\n") == 1 and text.endswith("\n"), text
    assert "Traceback" not in text and "An error occurred" not in text and "botocore" not in text
    return text


def refused_by_the_parser(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as ended:
        nxcdr(*args)
    assert ended.value.code == 2
    return one_line(capsys.readouterr().err)


# -- A: one line, non-zero ------------------------------------------------------------------


def test_a_cursor_that_is_not_one_is_refused(deployed, capsys):
    error = refused_by_the_parser(capsys, "list", "--cursor", "garbage")
    assert "not a cursor: 'garbage'" in error


@pytest.mark.parametrize(
    ("command", "cursor"),
    [
        (["list"], encode_cursor("2024-05-01T00:00:00Z#1")),  # a cursor of `number`
        (["quarantine"], encode_cursor("2024-05-01T00:00:00Z#1")),  # not a key: botocore refuses it
        (["quarantine"], encode_cursor({"month": "2024-05", "key": None})),  # a key DynamoDB refuses
    ],
)
def test_a_cursor_of_another_listing_is_one_line(deployed, capsys, command, cursor):
    assert nxcdr(*command, "--cursor", cursor) == 2
    error = one_line(capsys.readouterr().err)
    assert error.startswith(f"nxcdr: --cursor {cursor} is not a cursor of this listing")


@pytest.mark.parametrize("command", ["list", "sync"])
def test_a_backwards_range_is_refused_before_any_call(deployed, capsys, command):
    assert nxcdr(command, "--since", "1d", "--to", "3d") == 2
    error = one_line(capsys.readouterr().err)
    assert error.startswith("nxcdr: --since 1d (") and "is after --to 3d (" in error and "backwards" in error


def test_a_since_after_now_is_backwards_too(deployed, capsys):
    assert nxcdr("list", "--since", "2999-01-01") == 2
    assert "is after now (" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("limit", ["-5", "0", "ten", "10001", "2147483648", "99999999999999999999"])
def test_a_limit_out_of_1_to_10000_is_refused(deployed, capsys, limit):
    # Past a 32-bit number DynamoDB answered InternalFailure after its retries.
    error = refused_by_the_parser(capsys, "list", "--limit", limit)
    assert f"argument --limit: not a whole number from 1 to 10000: '{limit}'" in error
    assert error.endswith("(see nxcdr list --help)\n")


@pytest.mark.parametrize("expires", ["-1", "0", "604801"])
def test_a_url_lifetime_out_of_1_s_to_7_days_is_refused(deployed, capsys, expires):
    error = refused_by_the_parser(capsys, "recording", "X", "--expires", expires)
    assert "argument --expires: not a number of seconds from 1 to 604800" in error


def test_the_parsers_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as ended:
        cli.main([])
    assert ended.value.code == 2
    assert "the following arguments are required: command" in one_line(capsys.readouterr().err)
    assert cli.build_parser().parse_args(["recording", "X", "--expires", "604800"]).expires == 604800


def test_a_second_local_stack_names_the_port_in_use_and_starts_nothing(tmp_path, monkeypatch, capsys):
    from devtools import local_stack
    from devtools.dynamodb_local import free_port

    state = tmp_path / "stack.json"
    state.write_text('{"api": "the running stack"}', encoding="utf-8")
    monkeypatch.setattr(local_stack, "STATE_FILE", state)

    def started(*_: Any, **__: Any) -> None:
        raise AssertionError("the second stack was made")

    monkeypatch.setattr(local_stack.LocalStack, "__init__", started)
    for option in ("--port", "--recordings-port"):
        with socket.socket() as running:
            running.bind(("127.0.0.1", 0))
            running.listen()
            busy = running.getsockname()[1]
            ports = {name: str(free_port()) for name in ("--port", "--dynamodb-port", "--s3-port", "--recordings-port")}
            ports[option] = str(busy)
            argv = ["local_stack", "--no-nxcloud", *(part for pair in ports.items() for part in pair)]
            monkeypatch.setattr(sys, "argv", argv)
            with pytest.raises(SystemExit) as ended:
                local_stack.main()
        message = str(ended.value.code)
        assert f"port {busy} (" in message and "already in use" in message and "probably running" in message
        assert "\n" not in message
        assert state.read_text(encoding="utf-8") == '{"api": "the running stack"}'  # not removed


def test_a_second_local_stack_on_other_ports_leaves_the_running_ones_state_alone(tmp_path, monkeypatch):
    # What the busy-port message suggests (other ports) took over .local/stack.json, and
    # its Ctrl-C removed it: ./nxcdr then said no stack ran while the first one did.
    from devtools import local_stack
    from devtools.dynamodb_local import free_port

    with socket.socket() as running:
        running.bind(("127.0.0.1", 0))
        running.listen()
        api = f"http://127.0.0.1:{running.getsockname()[1]}"
        state = tmp_path / "stack.json"
        state.write_text(json.dumps({"api": api}), encoding="utf-8")
        monkeypatch.setattr(local_stack, "STATE_FILE", state)

        def started(*_: Any, **__: Any) -> None:
            raise AssertionError("the second stack was made")

        monkeypatch.setattr(local_stack.LocalStack, "__init__", started)
        ports = [str(free_port()) for _ in range(4)]
        argv = ["--no-nxcloud", "--port", ports[0], "--dynamodb-port", ports[1], "--s3-port", ports[2]]
        with pytest.raises(SystemExit) as ended:
            local_stack.main([*argv, "--recordings-port", ports[3]])
    message = str(ended.value.code)
    assert f"one is already running (push API {api}" in message and "NXCDR_LOCAL_STATE" in message
    assert "\n" not in message
    assert json.loads(state.read_text(encoding="utf-8")) == {"api": api}
    # A state file left by a stack that is gone does not stop a new one.
    assert local_stack.running_stack(state) is None


def test_the_nxcloud_stand_in_names_its_busy_port(tmp_path):
    with socket.socket() as running:
        running.bind(("127.0.0.1", 0))
        running.listen()
        port = running.getsockname()[1]
        completed = subprocess.run(
            [sys.executable, "-m", "devtools.fake_nxcloud", "--port", str(port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert completed.returncode != 0 and "Traceback" not in completed.stderr
    assert f"fake NXCLOUD: port {port} (the NXCLOUD stand-in) is already in use" in one_line(completed.stderr)


def test_an_unknown_deploy_environment_is_named_with_the_known_ones_before_sam_runs():
    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", "-n", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )

    for goal in ("deploy", "deploy-guided"):
        refused = make(goal, "ENV=staging")
        assert refused.returncode != 0 and "sam" not in refused.stdout
        one_line(refused.stderr)
        assert "unknown environment ENV=staging: samconfig.toml has dev, prod" in refused.stderr
    # Two names are no environment (the check matched each word, then argparse failed).
    refused = make("upgrade", "ENV=dev prod")
    assert refused.returncode != 0 and "sam" not in refused.stdout
    assert "unknown environment ENV=dev prod" in one_line(refused.stderr)
    assert "deploy --config-env prod" in make("deploy", "ENV=prod").stdout
    assert "deploy --config-env dev" in make("deploy").stdout


def test_the_wrapper_without_a_virtualenv_says_to_run_make_deps(tmp_path):
    shutil.copy2(REPO_ROOT / "nxcdr", tmp_path / "nxcdr")

    ran = subprocess.run(
        ["bash", str(tmp_path / "nxcdr"), "list"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert ran.returncode != 0 and ran.stdout == ""
    assert "run `make deps` first" in one_line(ran.stderr)


# -- B: downloads ---------------------------------------------------------------------------


MP3 = {"pns_call_result/9.mp3": b"pns call", "cc_cdr/9.mp3": b"cc call", "cc_cdr/9-voicemail.mp3": b"cc voicemail"}


class Recordings:
    """One id stored under two kinds, each with an archived call recording (and a
    voicemail for cc_cdr), in a bucket on moto."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.s3.create_bucket(Bucket="recordings")
        self.items: list[dict[str, Any]] = []
        for kind in ("pns_call_result", "cc_cdr"):
            entries = {}
            for key, body in MP3.items():
                if key.startswith(kind + "/"):
                    name = "voicemail" if "voicemail" in key else "call"
                    s3_key = f"recordings/2024/05/01/{key}"
                    self.s3.put_object(Bucket="recordings", Key=s3_key, Body=body)
                    sha = hashlib.sha256(body).hexdigest()
                    entries[name] = {"status": "archived", "s3Key": s3_key, "bytes": len(body), "sha256": sha}
            self.items.append({"kind": kind, "nxcloudId": "9", "recordings": entries})

    def get(self, nxcloud_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [item for item in self.items if kind in (None, item["kind"])]


@pytest.fixture
def recordings(monkeypatch) -> Iterator[Recordings]:
    with mock_aws():
        stored = Recordings()
        target = Target(
            store=stored,  # type: ignore[arg-type]
            lambda_client=None,
            sync_function="",
            api_url="",
            push_token=lambda: "",
            s3=stored.s3,
            recordings_bucket="recordings",
        )
        monkeypatch.setattr(cli, "local_target", lambda *_: target)
        yield stored


EXPECTED_FILES = {
    "9.pns_call_result.call.mp3": b"pns call",
    "9.cc_cdr.call.mp3": b"cc call",
    "9.cc_cdr.voicemail.mp3": b"cc voicemail",
}


def test_each_recording_of_an_id_stored_under_two_kinds_gets_its_own_file(recordings, tmp_path, capsys):
    assert cli.main(["recording", "9", "--download", str(tmp_path)]) == 0

    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == EXPECTED_FILES
    shown = capsys.readouterr().out
    assert all(name in shown for name in EXPECTED_FILES)


def test_an_existing_file_is_replaced_only_with_force(recordings, tmp_path, capsys):
    mine = tmp_path / "9.cc_cdr.call.mp3"
    mine.write_bytes(b"my own file")

    assert cli.main(["recording", "9", "--download", str(tmp_path)]) == 2
    error = one_line(capsys.readouterr().err)
    assert f"nxcdr: {mine} already exists: --force replaces it" in error
    assert [path.name for path in tmp_path.iterdir()] == [mine.name]  # nothing downloaded
    assert mine.read_bytes() == b"my own file"

    assert cli.main(["recording", "9", "--download", str(tmp_path), "--force"]) == 0
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == EXPECTED_FILES


def test_a_download_directory_that_does_not_exist_is_refused_not_created(recordings, tmp_path, capsys):
    missing = tmp_path / "no" / "such"

    assert cli.main(["recording", "9", "--download", str(missing)]) == 2
    assert f"--download {missing} does not exist" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_bytes(b"")
    assert cli.main(["recording", "9", "--download", str(tmp_path / "file")]) == 2
    assert "is not a directory" in one_line(capsys.readouterr().err)


def test_download_names_keep_the_id_part_of_the_key():
    assert download_name("cc_cdr", "voicemail", "recordings/x/cc_cdr/a%2Fb-voicemail.wav") == (
        "a%2Fb.cc_cdr.voicemail.wav"
    )
    assert download_name("pns_call_result", "leg2", "r/pns_call_result/id-ab12-leg2.mp3") == (
        "id-ab12.pns_call_result.leg2.mp3"
    )
    assert download_name("cc_report", "call", "r/cc_report/7") == "7.cc_report.call"


def test_download_names_of_long_ids_fit_a_file_name_and_stay_apart():
    # A 300-character id (its key is not hashed below 600) made a name past 255 bytes:
    # OSError "File name too long", a traceback.
    names = {
        download_name("cc_cdr", "call", f"recordings/x/cc_cdr/{stem}.wav")
        for stem in ("L" * 300, "L" * 299 + "M", "录" * 200, "L" * 253)
    }
    assert len(names) == 4
    assert all(len(name.encode()) <= 255 and name.endswith(".cc_cdr.call.wav") for name in names)
    assert download_name("cc_cdr", "call", "r/cc_cdr/short.wav") == "short.cc_cdr.call.wav"


@pytest.mark.parametrize(
    "command",
    [
        ["number", ""],
        ["binding", "--bind-id", ""],
        ["binding", "--customer-bind-id", " "],
        ["replay", ""],
        ["show", ""],
    ],
)
def test_an_empty_id_or_number_is_refused_by_the_parser(capsys, command):
    assert "must not be empty" in refused_by_the_parser(capsys, *command)


def test_a_cursor_nested_past_the_parser_is_not_a_cursor(deployed, capsys):
    cursor = base64.urlsafe_b64encode(b"[" * 60000).decode()
    assert "not a cursor" in refused_by_the_parser(capsys, "list", "--cursor", cursor)


def test_an_empty_stack_name_is_not_the_local_stack(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NXCDR_LOCAL_STATE", str(tmp_path / "none.json"))
    assert nxcdr("--stack", "", "list") == 2
    assert "--stack needs a stack name" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", ["list", "sync"])
def test_a_range_of_more_than_three_years_is_refused(deployed, capsys, command):
    # 0001-01-01 was 24,300 month queries; a backfill of 10,000 days 174,544 windows.
    assert nxcdr(command, "--since", "0001-01-01") == 2
    assert "is more than 1098 days: give a shorter range" in one_line(capsys.readouterr().err)


# -- C: show says how the recordings stand ----------------------------------------------------


def test_show_says_each_recordings_state_and_why_it_failed(deployed, capsys):
    from nxcloud_cdr.payloads.pns_call_result import map_pns_call_result
    from nxcloud_cdr.times import parse_zone
    from nxcloud_cdr.write_rule import RecordWriter

    body = '{"callId":"7","recordFile":"https://rec.example/r.mp3"}'
    RecordWriter(deployed.store._client, deployed.store.table_name).write(
        map_pns_call_result(json.loads(body), body, parse_zone("+08:00")), datetime.now(UTC), source="push"
    )
    assert nxcdr("show", "7") == 0
    shown = capsys.readouterr().out
    assert "recordings: pending" in shown and "  call: pending (not tried yet)" in shown

    [item] = deployed.store.get("7", None)
    failure = {
        "link": link_id("https://rec.example/r.mp3"),
        "status": "failed",
        "reason": "http_status",
        "error": "404 Not Found",
        "retryable": True,
        "attempts": 3,
        "firstFailedAt": "2024-05-01T10:00:00Z",
        "failedAt": "2024-05-01T11:00:00Z",
    }

    def stands(state: dict[str, Any]) -> str:
        deployed.dynamodb.update_item(
            TableName=deployed.store.table_name,
            Key=serialise({"pk": item["pk"], "sk": item["sk"]}),
            UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in state),
            ExpressionAttributeValues=serialise({f":{name}": value for name, value in state.items()}),
        )
        assert nxcdr("show", "7") == 0
        return capsys.readouterr().out

    shown = stands({"recordingState": "failed", "recordingFailed": "retrying", "recordings": {"call": failure}})
    assert "recordings: failed, retrying" in shown
    assert (
        "  call: retrying: http_status after 3 attempts (first 2024-05-01T10:00:00Z, last 2024-05-01T11:00:00Z):"
        " 404 Not Found" in shown
    )

    given_up = {**failure, "retryable": False}
    shown = stands({"recordingState": "failed", "recordingFailed": "failed", "recordings": {"call": given_up}})
    assert "recordings: failed, given up (`nxcdr recordings retry` tries again)" in shown
    assert "  call: failed: http_status after 3 attempts" in shown

    archived = {"link": failure["link"], "status": "archived", "s3Key": "k", "bytes": 5, "archivedAt": "T"}
    shown = stands({"recordingState": "archived", "recordings": {"call": archived}})
    assert "recordings: archived" in shown and "  call: archived (5 bytes, T): `nxcdr recording 7`" in shown


def test_show_of_a_record_without_recordings_says_so(deployed, capsys):
    from nxcloud_cdr.payloads.pns_call_result import map_pns_call_result
    from nxcloud_cdr.times import parse_zone
    from nxcloud_cdr.write_rule import RecordWriter

    body = '{"callId":"8"}'
    RecordWriter(deployed.store._client, deployed.store.table_name).write(
        map_pns_call_result(json.loads(body), body, parse_zone("+08:00")), datetime.now(UTC), source="push"
    )
    assert nxcdr("show", "8") == 0
    assert "recordings: none (the record links to no recording)" in capsys.readouterr().out
