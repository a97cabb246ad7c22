"""The operator tool: parsing and rendering, and its commands against a deployed stack on moto
(they also run end to end on the local stack in tests/e2e)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from nxcloud_cdr.kinds import PUSH_KINDS
from nxcloud_cdr.store import CallStore

from devtools.template import create_tables
from tools.nxcdr.cli import COMMAND_GROUPS, build_parser, main
from tools.nxcdr.output import render_table
from tools.nxcdr.target import local_target
from tools.nxcdr.times import parse_time
from tools.nxcdr.token import command_rotate_token, command_urls


def test_times_absolute_and_relative():
    assert parse_time("2023-11-17T05:42:30Z") == datetime(2023, 11, 17, 5, 42, 30, tzinfo=UTC)
    assert parse_time("2023-11-17") == datetime(2023, 11, 17, tzinfo=UTC)  # naive is UTC
    assert parse_time("2023-11-17T13:42:30+08:00") == datetime(2023, 11, 17, 5, 42, 30, tzinfo=UTC)
    ago = datetime.now(tz=UTC) - parse_time("36h")
    assert timedelta(hours=35, minutes=59) < ago < timedelta(hours=36, minutes=1)
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_table_keeps_ids_whole_and_cuts_long_messages():
    long_id = "pns_call_result#" + "a" * 64
    text = render_table([{"pk": long_id, "message": "m" * 100, "attempts": 2}], ["pk", "message", "attempts"])

    header, rule, row = text.splitlines()
    assert header.split() == ["pk", "message", "attempts"]
    assert long_id in row and ("m" * 57 + "...") in row and "m" * 58 not in row
    assert set(rule.replace(" ", "")) == {"-"}


def test_commands_and_their_required_arguments():
    parser = build_parser()
    assert parser.parse_args(["--json", "show", "123"]).id == "123"
    assert parser.parse_args(["binding", "--customer-bind-id", "order-1"]).customer_bind_id == "order-1"
    with pytest.raises(SystemExit):
        parser.parse_args(["binding"])  # one of the two ids is required
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_each_command_group_is_a_module_of_its_own():
    # A group (sql, events, lake came after the split) is a module registered in
    # COMMAND_GROUPS, not commands added to a shared module.
    [commands] = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]

    def module_of(parser: argparse.ArgumentParser) -> str:
        run = parser.get_default("run")
        if run is not None:
            return str(run.__module__)
        # A command of actions (lake flush, lake backfill): theirs, all in one module.
        [actions] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        [module] = {module_of(action) for action in actions.choices.values()}
        return module

    defined_in = {name: module_of(parser) for name, parser in commands.choices.items()}

    assert defined_in == {
        "show": "tools.nxcdr.records",
        "list": "tools.nxcdr.records",
        "number": "tools.nxcdr.records",
        "binding": "tools.nxcdr.records",
        "quarantine": "tools.nxcdr.quarantine",
        "replay": "tools.nxcdr.quarantine",
        "urls": "tools.nxcdr.token",
        "rotate-token": "tools.nxcdr.token",
        "sync": "tools.nxcdr.sync",
        "recordings": "tools.nxcdr.recordings",
        "recording": "tools.nxcdr.recordings",
        "sql": "tools.nxcdr.sql",
        "events": "tools.nxcdr.events",
        "lake": "tools.nxcdr.lake",
    }
    assert list(COMMAND_GROUPS) == [sys.modules[name] for name in dict.fromkeys(defined_in.values())]


def test_deployed_stack_is_found_from_its_outputs_and_the_token_read_only_when_needed():
    from tools.nxcdr.target import deployed_target

    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
            Name="token", SecretString="s3cret\n"
        )["ARN"]
        outputs = {
            "CallRecordsTableName": "records-t",
            "QuarantineTableName": "quarantine-t",
            "CcCdrSyncFunctionName": "sync-fn",
            "PushApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com",
            "PushTokenSecretArn": arn,
        }
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="nxcloud-cdr", TemplateBody=json.dumps(template)
        )

        target = deployed_target("nxcloud-cdr", None, "eu-west-1")

        assert (target.store.table_name, target.store.quarantine_table_name) == ("records-t", "quarantine-t")
        assert (target.sync_function, target.api_url) == ("sync-fn", outputs["PushApiUrl"])
        assert target.push_token() == "s3cret"


# -- commands against a deployed stack on moto, with a stand-in push API -------------------


STACK = "nxcloud-cdr"
FIRST_TOKEN = "first-token-value"  # moto's; never a real one
NOT_REPLAYABLE = ("invalid_json", "invalid_encoding", "not_an_object", "duplicate_key", "missing_id")


class PushApi:
    """Records what a replay sends and answers with ``status``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.headers: list[dict[str, str]] = []  # of each request, in order
        self.status = 200
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                api.requests.append((self.path, body))
                api.headers.append({name.lower(): value for name, value in self.headers.items()})
                answer = json.dumps({"ok": api.status == 200}).encode()
                self.send_response(api.status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


class Deployed:
    def __init__(self, api: PushApi) -> None:
        self.api = api
        self.secrets = boto3.client("secretsmanager")
        self.secret_arn = self.secrets.create_secret(Name="token", SecretString=FIRST_TOKEN)["ARN"]
        self.dynamodb = boto3.client("dynamodb")
        names = {"CallRecordsTable": "records-t", "QuarantineTable": "quarantine-t"}
        create_tables(self.dynamodb, names)
        self.store = CallStore(self.dynamodb, names["CallRecordsTable"], names["QuarantineTable"])
        outputs = {
            "CallRecordsTableName": names["CallRecordsTable"],
            "QuarantineTableName": names["QuarantineTable"],
            "CcCdrSyncFunctionName": "sync-fn",
            "PushApiUrl": api.url,
            "PushTokenSecretArn": self.secret_arn,
        }
        template = {
            "Parameters": {"PushTokenOverlapHours": {"Type": "Number", "Default": 72}},
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
        boto3.client("cloudformation").create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": "PushTokenOverlapHours", "ParameterValue": "48"}],
        )

    def token(self, stage: str = "AWSCURRENT") -> str:
        return str(self.secrets.get_secret_value(SecretId=self.secret_arn, VersionStage=stage)["SecretString"])

    def quarantine(self, body: bytes, reason: str, kind: str = "pns_call_result") -> str:
        return self.store.quarantine(
            kind, body, reason=reason, message="m", received_at=datetime(2024, 5, 1, 12, tzinfo=UTC)
        )

    def item(self, quarantine_id: str) -> dict[str, Any]:
        item = self.store.quarantined(quarantine_id)
        assert item is not None
        return item


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def nxcdr(*args: str) -> int:
    return main(["--stack", STACK, "--region", "us-east-1", *args])


def test_replay_asks_first_then_sends_the_exact_body_to_its_push_url(deployed, monkeypatch, capsys):
    body = b'{"callId": "1", "duration": "six"}'
    quarantine_id = deployed.quarantine(body, "invalid_fields")

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert nxcdr("replay", quarantine_id) == 1
    assert deployed.api.requests == []
    prompt = capsys.readouterr().err
    assert f"replay {quarantine_id} (invalid_fields) to {deployed.api.url}/v1/pns/call-result/<token>? [y/N]" in prompt
    leaked = FIRST_TOKEN in prompt
    assert not leaked

    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert nxcdr("replay", quarantine_id) == 0
    [(path, sent)] = deployed.api.requests
    assert sent == body
    right_url = path == f"/v1/pns/call-result/{FIRST_TOKEN}"
    assert right_url
    item = deployed.item(quarantine_id)
    assert item["replayStatus"] == 200 and item["replayedAt"]


def test_replay_refuses_an_already_replayed_body_unless_forced(deployed, capsys):
    quarantine_id = deployed.quarantine(b'{"callId": "2"}', "unprocessable")
    deployed.store.mark_replayed(quarantine_id, status=422, at=datetime(2024, 5, 2, tzinfo=UTC))

    assert nxcdr("replay", quarantine_id, "--yes") == 1
    assert deployed.api.requests == []
    assert "already replayed" in capsys.readouterr().err

    deployed.api.status = 422
    assert nxcdr("replay", quarantine_id, "--yes", "--force") == 2
    assert len(deployed.api.requests) == 1
    assert deployed.item(quarantine_id)["replayStatus"] == 422


def test_replay_that_got_no_answer_from_the_store_can_be_tried_again(deployed):
    quarantine_id = deployed.quarantine(b'{"callId": "3"}', "unprocessable")
    deployed.store.mark_replayed(quarantine_id, status=503, at=datetime(2024, 5, 2, tzinfo=UTC))

    assert nxcdr("replay", quarantine_id, "--yes") == 0
    assert len(deployed.api.requests) == 1


@pytest.mark.parametrize("reason", NOT_REPLAYABLE)
def test_replay_refuses_reasons_a_fix_cannot_change_unless_forced(deployed, capsys, reason):
    quarantine_id = deployed.quarantine(f"body of {reason}".encode(), reason)

    assert nxcdr("replay", quarantine_id, "--yes") == 1
    assert deployed.api.requests == []
    assert reason in capsys.readouterr().err

    assert nxcdr("replay", quarantine_id, "--yes", "--force") == 0
    assert len(deployed.api.requests) == 1


@pytest.mark.parametrize("reason", ["invalid_fields", "unprocessable", "unstorable", "too_large"])
def test_replayable_reasons_need_no_force(deployed, reason):
    quarantine_id = deployed.quarantine(f"body of {reason}".encode(), reason)

    assert nxcdr("replay", quarantine_id, "--yes") == 0
    assert len(deployed.api.requests) == 1


def test_replay_without_a_terminal_needs_yes(deployed, monkeypatch, capsys):
    quarantine_id = deployed.quarantine(b'{"callId": "3"}', "invalid_fields")
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped: not a terminal, not an answer

    assert nxcdr("replay", quarantine_id) == 1
    assert deployed.api.requests == []
    assert "--yes" in capsys.readouterr().err
    assert nxcdr("--json", "replay", quarantine_id, "--yes") == 0
    assert json.loads(capsys.readouterr().out)["status"] == 200


def test_replay_of_an_unknown_id_is_refused(deployed, capsys):
    assert nxcdr("replay", "pns_call_result#nothing", "--yes") == 1
    assert "no quarantined body" in capsys.readouterr().err


def test_sync_rows_are_not_pushed_but_re_read_by_a_sync_of_their_window(deployed, capsys):
    with_window = deployed.quarantine(b'{"callId": "", "startTime": 1704067200}', "missing_id", kind="cc_cdr")
    without = deployed.quarantine(b'{"callId": "c1", "startTime": 1704067200000}', "invalid_fields", kind="cc_cdr")
    for quarantine_id, window in ((with_window, "SET windowFrom = :f, windowTo = :t, "), (without, "SET ")):
        deployed.dynamodb.update_item(
            TableName=deployed.store.quarantine_table_name,
            Key={"pk": {"S": quarantine_id}},
            UpdateExpression=window + "#source = :sync",
            ExpressionAttributeNames={"#source": "source"},
            ExpressionAttributeValues={":sync": {"S": "sync"}}
            | ({":f": {"N": "1704067200"}, ":t": {"N": "1704070800"}} if window != "SET " else {}),
        )

    assert nxcdr("replay", with_window, "--yes", "--force") == 1
    assert f"./nxcdr --stack {STACK} sync --since 2024-01-01T00:00:00Z --to 2024-01-01T01:00:00Z" in (
        capsys.readouterr().err
    )
    assert nxcdr("replay", without, "--yes") == 1  # an hour either side of its start time
    assert "sync --since 2023-12-31T23:00:00Z --to 2024-01-01T01:00:00Z" in capsys.readouterr().err
    assert deployed.api.requests == []


def test_a_quarantined_call_log_callback_is_replayed_with_its_token_header(deployed, capsys):
    quarantine_id = deployed.quarantine(
        b'{"callId": "c2", "startTime": 1704067200000}', "invalid_fields", kind="cc_cdr"
    )

    assert nxcdr("replay", quarantine_id, "--yes") == 0
    [(path, sent)] = deployed.api.requests
    assert (path, sent) == (f"/v1/cc/call-log/{FIRST_TOKEN}", b'{"callId": "c2", "startTime": 1704067200000}')
    assert deployed.api.headers[0]["token"] == FIRST_TOKEN


def test_urls_print_every_push_url_with_the_current_token(deployed, capsys):
    assert nxcdr("urls", "--json") == 0  # --json after the subcommand
    urls = json.loads(capsys.readouterr().out)["urls"]

    assert sorted(urls) == sorted(PUSH_KINDS)
    expected = {
        "pns_call_result": f"{deployed.api.url}/v1/pns/call-result/{FIRST_TOKEN}",
        "pns_binding_not_exist": f"{deployed.api.url}/v1/pns/binding-not-exist/{FIRST_TOKEN}",
        "cc_report": f"{deployed.api.url}/v1/cc/report/{FIRST_TOKEN}",
        "cc_cdr": f"{deployed.api.url}/v1/cc/call-log/{FIRST_TOKEN}",
    }
    same = urls == expected
    assert same
    assert nxcdr("urls") == 0
    table = capsys.readouterr().out
    every_url_shown = all(url in table for url in expected.values())
    assert every_url_shown


def test_urls_of_the_local_stack_and_rotation_is_for_deployed_stacks(tmp_path: Path, capsys):
    state = tmp_path / "stack.json"
    state.write_text(
        json.dumps(
            {
                "api": "http://127.0.0.1:3000",
                "dynamodb": "http://127.0.0.1:8000",
                "tables": {"CallRecordsTable": "r", "QuarantineTable": "q"},
                "functions": {"CcCdrSyncFunction": "CcCdrSyncFunction"},
                "pushToken": "local-example-token",
            }
        )
    )
    target = local_target(state)
    arguments = build_parser().parse_args(["rotate-token", "--yes"])

    assert command_urls(target, build_parser().parse_args(["urls"])) == 0
    assert "http://127.0.0.1:3000/v1/cc/report/local-example-token" in capsys.readouterr().out
    assert command_rotate_token(target, arguments) == 1
    assert "for deployed stacks" in capsys.readouterr().err


def test_rotate_token_makes_a_new_current_token_and_keeps_the_old_as_previous(deployed, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert nxcdr("rotate-token") == 1
    unchanged = deployed.token() == FIRST_TOKEN
    assert unchanged

    assert nxcdr("rotate-token", "--yes") == 0
    output = capsys.readouterr().out
    new = deployed.token()
    previous_is_first = deployed.token("AWSPREVIOUS") == FIRST_TOKEN
    assert previous_is_first
    assert new != FIRST_TOKEN and len(new) == 40 and new.isalnum()
    shows_new_urls = f"{deployed.api.url}/v1/pns/call-result/{new}" in output
    assert shows_new_urls
    assert "48 hours" in output  # the stack's PushTokenOverlapHours
    assert "NXCLOUD" in output

    # A second rotation within the overlap would refuse the first URLs at once.
    assert nxcdr("rotate-token", "--yes") == 1
    assert "--force" in capsys.readouterr().err
    still_new = deployed.token() == new
    assert still_new
    assert nxcdr("rotate-token", "--yes", "--force") == 0
    only_last_previous = deployed.token("AWSPREVIOUS") == new
    assert only_last_previous


def test_kind_must_be_known_and_json_is_accepted_after_the_subcommand(capsys):
    parser = build_parser()
    assert parser.parse_args(["list", "--json"]).json is True
    assert parser.parse_args(["--json", "list"]).json is True
    assert parser.parse_args(["list"]).json is False
    assert parser.parse_args(["show", "1", "--kind", "cc_cdr"]).kind == "cc_cdr"
    for command in (["list", "--kind", "pns"], ["show", "1", "--kind", "cdr"]):
        with pytest.raises(SystemExit):
            parser.parse_args(command)
        error = capsys.readouterr().err
        assert all(kind in error for kind in ("pns_call_result", "pns_binding_not_exist", "cc_report", "cc_cdr"))


def test_aws_errors_are_one_line_not_a_traceback(monkeypatch, capsys, tmp_path):
    with mock_aws():
        assert nxcdr("urls") == 1  # no such stack
    error = capsys.readouterr().err
    assert error.startswith("nxcdr: ") and error.count("\n") == 1 and "does not exist" in error

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    assert nxcdr("urls") == 1
    error = capsys.readouterr().err
    assert error.startswith("nxcdr: no AWS credentials") and error.count("\n") == 1


def test_rotation_is_allowed_again_once_the_overlap_is_over(capsys):
    from tools.nxcdr.target import Target

    put: list[str] = []
    target = Target(
        store=None,  # type: ignore[arg-type]
        lambda_client=None,
        sync_function="",
        api_url="https://api.example",
        push_token=lambda: "",
        put_push_token=put.append,
        last_rotation=lambda: datetime.now(tz=UTC) - timedelta(hours=49),
        stack=STACK,
        overlap_hours=48,
    )

    assert command_rotate_token(target, build_parser().parse_args(["rotate-token", "--yes"])) == 0
    assert len(put) == 1
    target.last_rotation = lambda: datetime.now(tz=UTC) - timedelta(hours=47)
    assert command_rotate_token(target, build_parser().parse_args(["rotate-token", "--yes"])) == 1
    assert len(put) == 1


def test_show_lists_the_copies_received_their_merge_and_what_was_not_normalised(deployed, capsys):
    from nxcloud_cdr.payloads.pns_call_result import map_pns_call_result
    from nxcloud_cdr.times import parse_zone
    from nxcloud_cdr.write_rule import RecordWriter

    writer = RecordWriter(deployed.store._client, deployed.store.table_name)
    for body in ('{"callId":"7","duration":"six","recordFile":"r.mp3"}', '{"callId":"7"}'):
        writer.write(
            map_pns_call_result(json.loads(body), body, parse_zone("+08:00")), datetime.now(UTC), source="push"
        )

    assert nxcdr("show", "7") == 0
    shown = capsys.readouterr().out
    assert "not normalised: duration: Input should be a valid integer" in shown
    assert "sources: push (first received" in shown
    assert "raw (the join of 2 copies, value by value)" in shown
    assert "copy received" in shown and '{"callId":"7"}\n' in shown
    assert nxcdr("--json", "show", "7") == 0
    [item] = json.loads(capsys.readouterr().out)
    assert sorted(version["raw"] for version in item["versions"]) == sorted(
        ['{"callId":"7","duration":"six","recordFile":"r.mp3"}', '{"callId":"7"}']
    )
    assert json.loads(item["raw"]) == {"callId": "7", "duration": "six", "recordFile": "r.mp3"}


@pytest.mark.parametrize("args", [["list", "--since", "yesterday"], ["sync", "--since", "2d", "--to", "2024-13-01"]])
def test_a_time_that_is_not_one_is_a_one_line_error(args, capsys):
    with pytest.raises(SystemExit) as ended:
        main(args)

    assert ended.value.code == 2
    error = capsys.readouterr().err
    assert "not a time" in error and "Traceback" not in error


def test_list_says_which_kind_it_lists_when_none_is_given(deployed, capsys):
    assert nxcdr("list") == 0
    assert "(kind pns_call_result, the default; --kind for" in capsys.readouterr().out
    assert nxcdr("list", "--kind", "cc_cdr") == 0
    assert "the default" not in capsys.readouterr().out


def test_the_local_stack_is_found_where_make_local_writes_it():
    # ./nxcdr without NXCDR_LOCAL_STATE, as the README's demo runs it.
    from devtools import REPO_ROOT as stack_root
    from tools.nxcdr.target import REPO

    assert stack_root == REPO
    assert (REPO / "template.yaml").is_file()
