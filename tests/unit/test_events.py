"""events/ is generated from events/payloads/ and template.yaml: it cannot drift."""

from __future__ import annotations

import json

import pytest

from devtools.events import SAMPLES, sample_events
from devtools.template import http_routes
from tests.conftest import EVENTS


def test_sync_events_are_a_schedule_and_a_backfill():
    from nxcloud_cdr.sync_handler import parse_moment

    backfill = json.loads((EVENTS / "cc-cdr-sync-backfill.json").read_text())
    assert parse_moment(backfill["to"]) > parse_moment(backfill["from"])
    scheduled = json.loads((EVENTS / "cc-cdr-sync-scheduled.json").read_text())
    assert scheduled["detail-type"] == "Scheduled Event" and "from" not in scheduled


def test_committed_events_match_the_generator():
    expected = sample_events()
    committed = {path.name for path in EVENTS.glob("*.json")}

    assert committed == set(expected), "run `make events`"
    for name, event in expected.items():
        assert json.loads((EVENTS / name).read_text()) == event, f"{name} is stale: run `make events`"


@pytest.mark.parametrize("name", [sample[0] for sample in SAMPLES])
def test_each_event_is_an_http_api_v2_event_of_a_template_route(name):
    event = json.loads((EVENTS / name).read_text())
    routes = {route.route_key: route for route in http_routes()}

    assert event["version"] == "2.0"
    assert event["routeKey"] in routes
    assert event["requestContext"]["http"]["method"] == "POST"
    token = event["pathParameters"]["token"]
    assert event["rawPath"] == routes[event["routeKey"]].path.replace("{token}", token)
    assert isinstance(event["body"], str) and event["isBase64Encoded"] is False
