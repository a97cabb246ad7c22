"""The dashboard, the alarms and the runbook, read from the code, the template and the
README, so that a metric or an alarm added later cannot be left out of them."""

from __future__ import annotations

import re

from nxcloud_cdr import receiver

from devtools.template import load_template, resources_of_type
from tests.conftest import repo_path

TEMPLATE = load_template()
ALARMS = resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm")
README = repo_path("README.md").read_text(encoding="utf-8")


def emitted_metrics() -> set[str]:
    """Every metric name the layer's code emits."""
    names: set[str] = set(receiver._OUTCOME_METRICS.values())
    for module in repo_path("layers", "shared", "nxcloud_cdr").rglob("*.py"):
        names.update(re.findall(r'\bcount\(\s*"(\w+)"', module.read_text(encoding="utf-8")))
    return names


def test_every_metric_the_code_emits_is_on_the_dashboard():
    [dashboard] = resources_of_type(TEMPLATE, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    names = emitted_metrics()
    assert len(names) > 20  # the scan found the code's metrics
    assert sorted(name for name in names if f'"{name}"' not in body) == []


def test_every_alarm_notifies_the_topic_and_has_its_runbook_entry():
    assert len(ALARMS) >= 8
    headings = set(re.findall(r"^#### (\w+)$", README, flags=re.MULTILINE))
    for name, alarm in ALARMS.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert f"Runbook: README, section Runbook, {name}." in props["AlarmDescription"]["Fn::Sub"], name
        assert name in headings, f"no runbook entry for {name}"
        # One series decides the alarm.
        assert sum(1 for metric in props["Metrics"] if metric.get("ReturnData") is True) == 1, name


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
