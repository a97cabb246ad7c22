"""The slim item against DynamoDB Local: items of the shape before it stay readable and
take part in the write rule; the optional lookups can be left out of a deployment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from nxcloud_cdr.dynamodb_types import serialise
from nxcloud_cdr.items import build_item
from nxcloud_cdr.kinds import PNS_CALL_RESULT, normalised
from nxcloud_cdr.lookups import LookupOffError
from nxcloud_cdr.records import CallRecord
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.times import epoch_ms, parse_zone
from nxcloud_cdr.write_rule import RecordWriter

from devtools.template import create_tables
from tests.conftest import body_of, event_with_body, payload_text, table_names

ZONE = parse_zone("+08:00")
RECEIVED = datetime(2024, 5, 1, tzinfo=UTC)


def record(**changes: Any) -> CallRecord:
    payload = json.loads(payload_text("pns-call-result.json")) | changes
    raw = json.dumps(payload, separators=(",", ":"))
    return PNS_CALL_RESULT.map(payload, raw, ZONE)


def old_shape(copy: CallRecord, *, with_rank: bool) -> dict[str, Any]:
    """The item as releases before the slim item wrote it: kind, id, hash, completeness,
    the normalised fields and unknown field names stored beside raw."""
    item = build_item(copy, RECEIVED, source="push", retention_days=0)
    item.pop("rawZlib", None)
    item |= {
        "raw": copy.raw,
        "kind": copy.kind,
        "nxcloudId": copy.nxcloud_id,
        "contentHash": copy.content_hash,
        "completeness": copy.completeness,
        "fields": json.loads(json.dumps(copy.fields), parse_float=str),
        "unknownFields": list(copy.unknown_fields),
        "receivedAtMs": epoch_ms(RECEIVED),
    }
    if not with_rank:
        del item["rank"]
    return item


@pytest.mark.parametrize("with_rank", [True, False])
def test_items_of_the_old_shape_read_and_merge_like_new_ones(ddb, store, writer, push_env, invoke, with_rank):
    stale = record(recordFile="")
    ddb.put_item(TableName=push_env["TABLE_NAME"], Item=serialise(old_shape(stale, with_rank=with_rank)))

    [shown] = store.get(stale.nxcloud_id)
    assert (shown["kind"], shown["nxcloudId"], shown["contentHash"]) == (
        stale.kind,
        stale.nxcloud_id,
        stale.content_hash,
    )
    assert normalised(shown, ZONE)[0]["recordFile"] == ""  # the fields it stored

    duplicate = invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", stale.raw))
    assert body_of(duplicate)["outcome"] == "duplicate"

    better = record()
    response = invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", better.raw))

    assert body_of(response)["outcome"] == "updated"
    [shown] = store.get(better.nxcloud_id)
    assert "fields" not in shown and json.loads(shown["raw"]) == json.loads(better.raw)  # now the slim shape
    assert normalised(shown, ZONE)[0]["recordFile"].endswith(".mp3")
    assert "copies" not in shown and "callSummary" in shown  # the join of the two, from now on
    kept = {version["contentHash"]: version for version in store.versions(better.nxcloud_id)}
    assert (kept[stale.content_hash]["raw"], kept[stale.content_hash]["rank"]) == (stale.raw, stale.rank)
    assert kept[better.content_hash]["raw"] == better.raw


@pytest.fixture
def lean_store(dynamodb_local) -> tuple[CallStore, RecordWriter, Any]:
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint)
    names = table_names()
    create_tables(
        client, names, parameters={"DidLookup": "false", "DidYLookup": "false", "CustomerBindIdLookup": "false"}
    )
    table, quarantine = names["CallRecordsTable"], names["QuarantineTable"]
    return CallStore(client, table, quarantine), RecordWriter(client, table), client


def test_a_deployment_without_the_optional_lookups(lean_store):
    store, writer, client = lean_store
    copy = record()
    writer.write(copy, RECEIVED, source="push")

    indexes = {
        index["IndexName"]
        for index in client.describe_table(TableName=writer.table_name)["Table"]["GlobalSecondaryIndexes"]
    }
    # ByRecordingFailure is in every deployment: sparse, it costs nothing until a recording fails.
    assert indexes == {"ByTime", "ByCaller", "ByCallee", "ByBindId", "ByRecordingFailure"}
    assert [item["nxcloudId"] for item in store.by_number(str(copy.caller)).items] == [copy.nxcloud_id]
    assert store.by_number(str(copy.did)).items == []  # no ByDid: X numbers are not looked up
    assert [item["nxcloudId"] for item in store.by_binding(bind_id=copy.bind_id).items] == [copy.nxcloud_id]
    with pytest.raises(LookupOffError, match="CustomerBindIdLookup"):
        store.by_binding(customer_bind_id=str(copy.customer_bind_id))
    # The item keeps the attributes, so turning an index on later indexes every record.
    [shown] = store.get(copy.nxcloud_id)
    assert (shown["didNumber"], shown["customerBindId"]) == (copy.did, copy.customer_bind_id)


def test_fields_rebuilt_from_any_stored_row_print(store, writer):
    """A sync row may hold NaN and lone surrogate escapes (NXCLOUD sends both): the
    rebuilt fields read and print, as the stored fields did."""
    from nxcloud_cdr import nxjson
    from nxcloud_cdr.kinds import CC_CDR

    escape = "\\ud800"  # JSON's escape of a lone surrogate, as six characters
    raw = '{"callId":"odd-row","startTime":1714543080000,"agentName":"A ' + escape + '","mos":NaN,"x":1e400}'
    writer.write(CC_CDR.map(nxjson.loads(raw, constants=True), raw, ZONE), RECEIVED, source="sync")

    [shown] = store.get("odd-row")
    fields, _ = normalised(shown, ZONE)

    assert "_notReadable" not in fields
    json.dumps(fields, default=str, ensure_ascii=False).encode("utf-8")  # prints: no lone surrogate left
    assert fields["agentName"] == "A " + escape  # kept escaped, as the item once stored it
