"""Each push function, invoked with the events/ files, against DynamoDB Local."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from nxcloud_cdr.dynamodb_types import deserialise, item_size

from tests.conftest import as_read, body_of, event_with_body, load_event, payload_text

SAMPLES = [
    ("PnsCallResultFunction", "pns-call-result.json", "pns_call_result", "1604763745256783872"),
    ("PnsCallResultFunction", "pns-call-result-unanswered.json", "pns_call_result", "1604763999100000000"),
    ("PnsBindingNotExistFunction", "pns-binding-not-exist.json", "pns_binding_not_exist", "1640920940635361280"),
    ("CcReportFunction", "cc-report.json", "cc_report", "c7a1f0e2b3d44e5f8a9b0c1d2e3f4a5b"),
    ("CcReportFunction", "cc-report-unanswered.json", "cc_report", "d8b2a1f3c4e55f6a9b0c1d2e3f4a5b6c"),
]


def scan(ddb, table: str) -> list[dict]:
    items: list[dict] = []
    kwargs: dict = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(deserialise(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.parametrize(("function", "event_file", "kind", "nxcloud_id"), SAMPLES)
def test_sample_event_is_stored_with_raw_body(ddb, push_env, invoke, function, event_file, kind, nxcloud_id):
    event = load_event(event_file)
    response = invoke(function, event)

    assert response["statusCode"] == 200
    assert body_of(response) == {"ok": True, "outcome": "stored", "id": nxcloud_id}
    [item] = scan(ddb, push_env["TABLE_NAME"])
    assert (item["pk"], item["sk"]) == (f"ID#{nxcloud_id}", kind)
    # Nothing stored twice: the normalised fields are rebuilt from raw, kind and id are the key.
    assert not set(item) & {"fields", "unknownFields", "kind", "nxcloudId", "contentHash", "completeness"}
    assert (as_read(item)["kind"], as_read(item)["nxcloudId"]) == (kind, nxcloud_id)
    assert as_read(item)["fields"]
    assert as_read(item)["raw"] == event["body"]  # exactly what NXCLOUD sent
    assert json.loads(as_read(item)["raw"]) == json.loads(payload_text(event_file))
    # One write unit: raw is kept as text when the item fits 1 KB, compressed when that makes it fit.
    assert item_size(item) <= 1024
    as_text = {name: value for name, value in item.items() if name != "rawZlib"} | {"raw": event["body"]}
    assert ("raw" in item) == (item_size(as_text) <= 1024)
    assert item["source"] == "push"
    assert "expiresAt" not in item  # RETENTION_DAYS=0 keeps records forever
    assert scan(ddb, push_env["QUARANTINE_TABLE_NAME"]) == []


def test_unknown_fields_are_accepted_and_kept(ddb, push_env, invoke):
    response = invoke("PnsCallResultFunction", load_event("pns-call-result-unanswered.json"))

    assert response["statusCode"] == 200
    [item] = records(ddb, push_env["TABLE_NAME"])
    assert item["unknownFields"] == ["lineIp"]
    assert item["fields"]["lineIp"] == "10.0.0.8"
    assert item["calleeNumber"] == "NX09445G000025"  # SIP URI user part
    assert item["didNumber"] == "85235757584"  # leading + dropped
    assert "customerBindId" not in item  # empty: left out of the sparse index


def test_retention_sets_ttl_from_call_start(ddb, push_env, invoke, monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "30")
    from nxcloud_cdr.receiver import reset_runtime

    reset_runtime()
    invoke("PnsCallResultFunction", load_event("pns-call-result.json"))

    [item] = scan(ddb, push_env["TABLE_NAME"])
    assert item["expiresAt"] == 1671440452 + 30 * 86400
    ttl = ddb.describe_time_to_live(TableName=push_env["TABLE_NAME"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiresAt"


def test_sequential_duplicate_is_answered_200_and_stored_once(ddb, push_env, invoke):
    first = invoke("PnsCallResultFunction", load_event("pns-call-result.json"))
    stored = scan(ddb, push_env["TABLE_NAME"])
    second = invoke("PnsCallResultFunction", load_event("pns-call-result-duplicate.json"))

    assert (first["statusCode"], second["statusCode"]) == (200, 200)
    assert body_of(second)["outcome"] == "duplicate"
    assert scan(ddb, push_env["TABLE_NAME"]) == stored  # not even rewritten


def test_retry_with_other_whitespace_and_key_order_is_a_duplicate(ddb, push_env, invoke):
    invoke("PnsCallResultFunction", load_event("pns-call-result.json"))
    payload = json.loads(payload_text("pns-call-result.json"))
    reordered = json.dumps(dict(reversed(list(payload.items()))), separators=(",", ":"))

    response = invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", reordered))

    assert body_of(response)["outcome"] == "duplicate"
    assert len(scan(ddb, push_env["TABLE_NAME"])) == 1


# Lambda never runs two invocations in one process; threads here share Powertools'
# metrics object, so one flush can find another thread's metrics already sent.
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_sixty_concurrent_retries_store_one_item(ddb, push_env, invoke):
    event = load_event("cc-report.json")
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda _: invoke("CcReportFunction", event), range(60)))

    assert {response["statusCode"] for response in responses} == {200}
    outcomes = [body_of(response)["outcome"] for response in responses]
    assert outcomes.count("stored") == 1
    assert outcomes.count("duplicate") == 59
    assert len(scan(ddb, push_env["TABLE_NAME"])) == 1


def records(ddb, table: str) -> list[dict]:
    """The items lookups see (not the versions of copies that are not shown), as read."""
    return [
        as_read(item)
        for item in scan(ddb, table)
        if str(item["pk"]).startswith("ID#") and not str(item["sk"]).startswith("v#")
    ]


def test_a_fuller_copy_is_merged_in_and_both_copies_are_kept(ddb, push_env, invoke, store):
    payload = json.loads(payload_text("pns-call-result.json"))
    without_recording = dict(payload, recordFile="")
    invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", json.dumps(without_recording)))

    response = invoke("PnsCallResultFunction", load_event("pns-call-result.json"))

    assert body_of(response)["outcome"] == "updated"
    [item] = records(ddb, push_env["TABLE_NAME"])
    assert item["fields"]["recordFile"].endswith(".mp3")
    assert item["sources"] == ["push"] and "copies" not in item
    kept = {version["raw"]: version for version in store.versions(payload["callId"])}
    assert set(kept) == {json.dumps(without_recording), payload_text("pns-call-result.json")}
    for version in kept.values():
        assert version["sk"] == f"v#pns_call_result#{version['contentHash']}"
        assert not set(version) & {"sortKey", "timeBucket", "callerNumber", "calleeNumber", "didNumber", "bindId"}
    assert scan(ddb, push_env["QUARANTINE_TABLE_NAME"]) == []
    assert [found["sk"] for found in store.get(payload["callId"])] == ["pns_call_result"]


def test_a_poorer_late_copy_changes_nothing_shown_and_is_kept(ddb, push_env, invoke, store):
    invoke("PnsCallResultFunction", load_event("pns-call-result.json"))
    payload = json.loads(payload_text("pns-call-result.json"))
    stale = json.dumps(dict(payload, recordFile=""))

    response = invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", stale))

    assert response["statusCode"] == 200
    assert body_of(response)["outcome"] == "kept"
    [item] = records(ddb, push_env["TABLE_NAME"])
    assert item["fields"]["recordFile"].endswith(".mp3")
    assert stale in [version["raw"] for version in store.versions(payload["callId"])]


def test_copies_that_each_hold_something_are_merged_field_by_field(ddb, push_env, invoke, store):
    # A callback before the recording existed, a correction with the answer time: the
    # item holds both, in either order.
    payload = json.loads(payload_text("pns-call-result.json"))
    early = dict(payload, recordFile="", duration=6)
    late = dict(payload, answerAt=0, duration=7)
    for order, bodies in (("early first", [early, late]), ("late first", [late, early])):
        call_id = f"{payload['callId']}-{order.split()[0]}"
        for body in bodies:
            invoke(
                "PnsCallResultFunction", event_with_body("pns-call-result.json", json.dumps(body | {"callId": call_id}))
            )
        [item] = [record for record in records(ddb, push_env["TABLE_NAME"]) if record["nxcloudId"] == call_id]
        fields = item["fields"]
        assert fields["recordFile"] == payload["recordFile"] and fields["answerAt"] == payload["answerAt"], order
        # Both set a duration: the higher-ranked copy's wins, whichever came first.
        ranked = max(
            (json.dumps(body | {"callId": call_id}) for body in bodies),
            key=item_rank,
        )
        assert fields["duration"] == json.loads(ranked)["duration"], order


@pytest.mark.parametrize("order", ["v1 then v2", "v2 then v1"])
def test_equally_complete_copies_end_the_same_whatever_their_order(ddb, push_env, invoke, store, order):
    payload = json.loads(payload_text("pns-call-result.json"))
    v1, v2 = json.dumps(dict(payload, duration=10)), json.dumps(dict(payload, duration=12))
    bodies = [v1, v2] if order == "v1 then v2" else [v2, v1]

    outcomes = [
        body_of(invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", body)))["outcome"]
        for body in bodies
    ]

    assert outcomes[0] == "stored" and outcomes[1] in ("updated", "kept")
    [item] = records(ddb, push_env["TABLE_NAME"])
    # The content hash breaks the tie: the same value is shown in both orders.
    winner = max([v1, v2], key=item_rank)
    assert json.loads(item["raw"]) == json.loads(winner)
    assert sorted(kept["raw"] for kept in store.versions(payload["callId"])) == sorted([v1, v2])


def item_rank(body: str) -> str:
    from nxcloud_cdr.payloads.pns_call_result import map_pns_call_result
    from nxcloud_cdr.times import parse_zone

    return map_pns_call_result(json.loads(body), body, parse_zone("+08:00")).rank


BAD_BODIES = [
    ("not JSON", b'{"callId": "1", ', 400, "invalid_json"),
    ("not UTF-8", b'{"callId": "\xff\xfe"}', 400, "invalid_encoding"),
    ("a JSON array", b'[{"callId": "1"}]', 400, "not_an_object"),
    ("a JSON string", b'"callId"', 400, "not_an_object"),
    ("empty", b"", 400, "invalid_json"),
    ("NaN", b'{"callId": "1", "duration": NaN}', 400, "invalid_json"),
    ("deeply nested", b'{"callId": "1", "x": ' + b"[" * 30000 + b"]" * 30000 + b"}", 400, "invalid_json"),
    ("no callId", payload_text("pns-call-result-missing-id.json").encode(), 400, "missing_id"),
    ("empty callId", b'{"callId": "  ", "caller": "1"}', 400, "missing_id"),
    ("a field named twice", b'{"callId": "1", "callId": "2"}', 400, "duplicate_key"),
    ("an id too long for a key", json.dumps({"callId": "9" * 1100}).encode(), 422, "unstorable"),
    ("over 64 KiB", json.dumps({"callId": "1", "pad": "x" * 70000}).encode(), 413, "too_large"),
]


@pytest.mark.parametrize(("case", "body", "status", "error"), BAD_BODIES, ids=[case[0] for case in BAD_BODIES])
def test_bad_input_gets_4xx_and_the_exact_body_is_quarantined(ddb, push_env, invoke, case, body, status, error):
    response = invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", body))

    assert response["statusCode"] == status
    answer = body_of(response)
    assert (answer["ok"], answer["error"]) == (False, error)
    assert answer["message"] and "Traceback" not in response["body"]
    assert scan(ddb, push_env["TABLE_NAME"]) == []
    [kept] = scan(ddb, push_env["QUARANTINE_TABLE_NAME"])
    assert kept["pk"] == answer["quarantineId"]
    assert (kept["reason"], kept["kind"], kept["attempts"]) == (error, "pns_call_result", 1)
    stored = bytes(kept["body"])
    if kept["bodyEncoding"] == "zlib":
        import zlib

        stored = zlib.decompress(stored)
    assert stored == body
    assert kept["bodySize"] == len(body)


def test_retried_bad_push_is_one_quarantine_item_counting_attempts(ddb, push_env, invoke):
    event = load_event("pns-call-result-bad-body.json")
    responses = [invoke("PnsCallResultFunction", event) for _ in range(3)]

    assert [response["statusCode"] for response in responses] == [400, 400, 400]
    [kept] = scan(ddb, push_env["QUARANTINE_TABLE_NAME"])
    assert kept["attempts"] == 3
    assert kept["firstSeenAt"] <= kept["lastSeenAt"]


@pytest.mark.parametrize(
    ("function", "event_file"),
    [
        ("PnsCallResultFunction", "pns-call-result-bad-body.json"),
        ("PnsBindingNotExistFunction", "pns-binding-not-exist-bad-body.json"),
        ("CcReportFunction", "cc-report-bad-body.json"),
    ],
)
def test_bad_body_event_of_each_function(ddb, push_env, invoke, function, event_file):
    response = invoke(function, load_event(event_file))

    assert response["statusCode"] == 400
    assert body_of(response)["error"] == "invalid_json"
    assert len(scan(ddb, push_env["QUARANTINE_TABLE_NAME"])) == 1


@pytest.mark.parametrize(
    ("function", "event_file"),
    [
        ("PnsCallResultFunction", "pns-call-result-wrong-token.json"),
        ("PnsBindingNotExistFunction", "pns-binding-not-exist-wrong-token.json"),
        ("CcReportFunction", "cc-report-wrong-token.json"),
    ],
)
def test_wrong_token_is_403_and_nothing_is_stored(ddb, push_env, invoke, function, event_file):
    response = invoke(function, load_event(event_file))

    assert response["statusCode"] == 403
    assert body_of(response)["error"] == "forbidden"
    assert scan(ddb, push_env["TABLE_NAME"]) == []
    assert scan(ddb, push_env["QUARANTINE_TABLE_NAME"]) == []


def test_missing_token_is_403(ddb, push_env, invoke):
    event = load_event("pns-call-result.json")
    event["pathParameters"] = {}

    assert invoke("PnsCallResultFunction", event)["statusCode"] == 403
    assert scan(ddb, push_env["TABLE_NAME"]) == []


def test_base64_encoded_body_is_decoded(ddb, push_env, invoke):
    body = payload_text("pns-binding-not-exist.json").encode()

    response = invoke("PnsBindingNotExistFunction", event_with_body("pns-binding-not-exist.json", body))

    assert response["statusCode"] == 200
    [item] = scan(ddb, push_env["TABLE_NAME"])
    assert item["raw"] == body.decode()


@pytest.mark.parametrize(("function", "event_file", "kind", "nxcloud_id"), SAMPLES)
def test_a_stored_push_logs_one_short_line_without_numbers(
    ddb, push_env, invoke, capsys, function, event_file, kind, nxcloud_id
):
    event = load_event(event_file)
    capsys.readouterr()

    invoke(function, event)

    [line] = capsys.readouterr().out.splitlines()  # INFO, the default level
    logged = json.loads(line)
    assert len(line.encode()) <= 300
    assert (logged["nxcloudId"], logged["outcome"], logged["PushType"]) == (nxcloud_id, "stored", kind)
    assert logged["RecordsStored"] == [1.0]
    payload = json.loads(event["body"])
    numbers = [payload.get(name) for name in ("caller", "callee", "called", "did")]
    numbers += list(payload.get("data", {}).get("requestParams", {}).values())
    for number in [*numbers, push_env["PUSH_TOKEN"]]:
        assert not number or str(number) not in line
