"""The dashboard, the alarms and the runbook, read from the code, the templates and
docs/operations.md, so that a metric or an alarm added later cannot be left out of them."""

from __future__ import annotations

import json
import re
from typing import Any

from nxcloud_cdr import publisher_handler, receiver
from nxcloud_cdr.kinds import PUSH_KINDS
from nxcloud_cdr.recordings import handler as archiver_handler
from nxcloud_cdr.store_errors import StoreError

from devtools import monitoring
from devtools.template import load_template, resources_of_type
from tests.conftest import ARCHIVER_FUNCTION, FUNCTIONS, PUBLISHER_FUNCTION, SYNC_FUNCTION, load_event, repo_path

TEMPLATE = load_template()
MONITORING = load_template(monitoring.MONITORING)
ALARMS = resources_of_type(MONITORING, "AWS::CloudWatch::Alarm")
RUNBOOK = repo_path(monitoring.RUNBOOK).read_text(encoding="utf-8")


def emitted_metrics() -> set[str]:
    """Every metric name the layer's code emits."""
    names: set[str] = set(receiver._OUTCOME_METRICS.values())
    for module in repo_path("layers", "shared", "nxcloud_cdr").rglob("*.py"):
        names.update(re.findall(r'(?<!\w)_?count\(\s*"(\w+)"', module.read_text(encoding="utf-8")))
    return names


def test_every_metric_the_code_emits_is_on_the_dashboard():
    [dashboard] = resources_of_type(MONITORING, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"][0]
    names = emitted_metrics()
    assert len(names) > 20  # the scan found the code's metrics
    assert sorted(name for name in names if f'"{name}"' not in body) == []


def test_no_dashboard_metric_has_an_empty_dimension_without_a_lake():
    # CloudWatch refuses a dashboard whose metric has an empty dimension value; a stack
    # with LakeEnabled=false passes no delivery stream name.
    [dashboard] = resources_of_type(MONITORING, "AWS::CloudWatch::Dashboard").values()
    body, variables = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert "${DeliveryStreamName}" not in body and "${LakeStreamShown}" in body
    condition, when_on, when_off = variables["LakeStreamShown"]["Fn::If"]
    assert (condition, when_on) == ("LakeOn", {"Ref": "DeliveryStreamName"}) and when_off


def test_every_alarm_notifies_the_topic_and_has_its_runbook_entry():
    assert len(ALARMS) >= 8
    runbook = RUNBOOK[RUNBOOK.index("## Runbook") :]
    headings = set(re.findall(r"^#### (\w+)$", runbook, flags=re.MULTILINE))
    for name, alarm in ALARMS.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert f"Runbook: docs/operations.md, section Runbook, {name}." in props["AlarmDescription"]["Fn::Sub"], name
        assert name in headings, f"no runbook entry for {name}"
        # One series decides the alarm.
        assert sum(1 for metric in props["Metrics"] if metric.get("ReturnData") is True) == 1, name


class _StoreDown:
    def archive(self, key: Any, time_left: Any) -> Any:
        raise StoreError("DynamoDB did not answer")


def emitted_series(invoke: Any, capsys: Any) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """(namespace, dimensions) of what each function really emits: each run on a path
    that answers without AWS (a wrong token, a sync without credentials), its
    metrics line read back as CloudWatch reads it."""
    for function in FUNCTIONS:
        push_type = re.sub(r"(?<!^)(?=[A-Z])", "-", function.removesuffix("Function")).lower()
        invoke(function, load_event(f"{push_type}-wrong-token.json"))
    invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))
    invoke(ARCHIVER_FUNCTION, load_event("recording-archiver-stream.json"))  # a store that is down
    invoke(PUBLISHER_FUNCTION, load_event("recording-archiver-stream.json"))  # its salt unreadable
    series = set()
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                series.add((directive["Namespace"], tuple((name, str(blob[name])) for name in dimensions)))
    return series


def test_dashboard_and_alarms_watch_the_namespace_and_dimensions_emitted(push_env, monkeypatch, invoke, capsys):
    for name in ("NXCLOUD_ACCESS_KEY", "NXCLOUD_ACCESS_SECRET", "NXCLOUD_CREDENTIALS_SECRET_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(archiver_handler, "_archiver", _StoreDown())
    monkeypatch.setenv("EVENT_BUS_NAME", "calls")

    def salt_unreadable() -> Any:
        raise RuntimeError("Secrets Manager did not answer")

    monkeypatch.setattr(publisher_handler, "publisher", salt_unreadable)
    series = emitted_series(invoke, capsys)
    assert len(series) == len(FUNCTIONS) + 3, series  # one series per function
    namespaces = {namespace for namespace, _ in series}
    watched: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for alarm in ALARMS.values():
        for metric in alarm["Properties"]["Metrics"]:
            stat = metric.get("MetricStat")
            if stat and not stat["Metric"]["Namespace"].startswith("AWS/"):
                dimensions = tuple((d["Name"], d["Value"]) for d in stat["Metric"].get("Dimensions", []))
                watched.append((stat["Metric"]["Namespace"], dimensions))
    [dashboard] = resources_of_type(MONITORING, "AWS::CloudWatch::Dashboard").values()
    for widget in json.loads(dashboard["Properties"]["DashboardBody"]["Fn::Sub"][0])["widgets"]:
        for entry in widget.get("properties", {}).get("metrics", []):
            parts = [part for part in entry if isinstance(part, str)]
            if parts and parts[0] != "..." and not parts[0].startswith("AWS/"):
                pairs = parts[2:]
                watched.append((parts[0], tuple(zip(pairs[::2], pairs[1::2], strict=True))))
    assert len(watched) > 30
    assert {namespace for namespace, _ in watched} == namespaces
    assert sorted(set(watched) - series) == []


def test_alarms_watch_metrics_that_exist():
    names = emitted_metrics()
    for name, alarm in ALARMS.items():
        for metric in alarm["Properties"]["Metrics"]:
            stat = metric.get("MetricStat")
            if stat and stat["Metric"]["Namespace"] == "NxcloudCdr":
                assert stat["Metric"]["MetricName"] in names, (name, stat["Metric"]["MetricName"])


def test_access_logs_never_hold_the_token():
    settings = TEMPLATE["Resources"]["PushApi"]["Properties"]["AccessLogSettings"]["Fn::If"]
    assert settings[0] == "ApiAccessLogsOn" and settings[2] == {"Ref": "AWS::NoValue"}
    log_format = settings[1]["Format"]
    variables = set(re.findall(r"\$context\.([\w.]+)", log_format))
    assert {"requestId", "routeKey", "status"} <= variables  # the route's template: {token}, not its value
    # The path, the raw query and the domain prefix can hold what the URL holds.
    assert not {name for name in variables if "path" in name.lower() or "uri" in name.lower()}
    assert all(
        name.startswith(("request", "route", "status", "response", "integration", "error", "identity.sourceIp"))
        for name in variables
    ), variables


def test_alarms_can_reach_their_topic():
    # CloudWatch cannot publish to a topic encrypted with the AWS managed key (aws/sns):
    # every notification would be dropped. A customer key would need a key policy for it.
    [topic] = resources_of_type(TEMPLATE, "AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" not in topic["Properties"]


def test_the_templates_alarms_and_dashboard_are_generated_from_the_push_types():
    # Every push type is in every alarm and widget: monitoring.yaml, and the nested
    # application in template.yaml that passes it every function's name, are
    # devtools/monitoring.py's output for the push types the layer knows (`make
    # monitoring` writes them).
    text = repo_path("template.yaml").read_text(encoding="utf-8")
    assert monitoring.with_section(text) == text, "run make monitoring"
    assert repo_path("monitoring.yaml").read_text(encoding="utf-8") == monitoring.nested_template(), (
        "run make monitoring"
    )
    assert all(f"Value: {kind}\n" in monitoring.nested_template() for kind in PUSH_KINDS)
    assert all(
        f"        {kind.function}: !Ref {kind.function}\n" in monitoring.section() for kind in PUSH_KINDS.values()
    )


def test_template_yaml_holds_the_architecture_and_the_monitoring_is_nested():
    # The generated alarms and dashboard were two thirds of template.yaml's lines.
    # The generated part left in template.yaml is the nested application alone.
    assert len(monitoring.section().splitlines()) < 40
    assert not resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm")
    assert not resources_of_type(TEMPLATE, "AWS::CloudWatch::Dashboard")
    nested = TEMPLATE["Resources"]["Monitoring"]
    assert nested["Properties"]["Location"] == "monitoring.yaml"
    # The parent passes exactly what the nested template asks for, and each value is one
    # of its own resources or parameters.
    passed = nested["Properties"]["Parameters"]
    assert set(passed) == set(MONITORING["Parameters"])
    for given in passed.values():
        value = given
        if "Fn::If" in given:  # a nested stack's output when it is there (the lake's stream)
            condition, value, otherwise = given["Fn::If"]
            assert condition in TEMPLATE["Conditions"] and otherwise == ""
        name = value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]
        assert name in TEMPLATE["Resources"] or name in TEMPLATE["Parameters"] or name == "AWS::StackName", value
    # The dashboard's output names the dashboard the nested stack makes.
    assert "${Monitoring.Outputs.DashboardName}" in TEMPLATE["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert MONITORING["Outputs"]["DashboardName"]["Value"] == {"Ref": "Dashboard"}
    # Alarms notify the parent's topic, whose ARN the nested stack is given.
    assert passed["AlarmTopic"] == {"Ref": "AlarmTopic"}
    assert resources_of_type(TEMPLATE, "AWS::SNS::Topic").keys() == {"AlarmTopic"}
