"""lake.yaml, the lake's nested template: its Glue tables as devtools/lake_template.py
makes them from change_events and sql/calls.sql, the view in the form Athena reads, and
the delivery stream named and shaped as the publisher and the table expect."""

from __future__ import annotations

import json
import re

from nxcloud_cdr.change_events import COLUMNS, EVENT_COLUMNS

from devtools import lake_template
from devtools.lake_local import calls_sql, lake_columns
from devtools.template import load_template, resources_of_type

TEXT = lake_template.LAKE.read_text(encoding="utf-8")
LAKE = load_template(lake_template.LAKE)
RESOURCES = LAKE["Resources"]
STREAM = RESOURCES["DeliveryStream"]["Properties"]
DESTINATION = STREAM["ExtendedS3DestinationConfiguration"]


def table_input(logical_id: str) -> dict:
    return RESOURCES[logical_id]["Properties"]["TableInput"]


def test_the_generated_tables_are_what_the_generator_makes():
    assert lake_template.with_section(TEXT) == TEXT, "run: python -m devtools.lake_template"


def test_call_changes_has_change_events_columns_and_types_in_order_and_dt_projected():
    table = table_input("CallChangesTable")
    columns = {column["Name"]: column["Type"] for column in table["StorageDescriptor"]["Columns"]}
    assert list(columns.items()) == [*EVENT_COLUMNS.items(), *COLUMNS.items()] == list(lake_columns().items())
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    parameters = table["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert (parameters["projection.dt.type"], parameters["projection.dt.format"]) == ("date", "yyyy-MM-dd")
    assert parameters["projection.dt.range"].endswith(",NOW+1DAYS")
    assert parameters["storage.location.template"] == {"Fn::Sub": "s3://${LakeBucket}/call_changes/dt=${!dt}/"}
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")


def test_the_view_is_calls_sql_with_its_columns_in_athenas_form():
    view = table_input("CallsView")
    assert view["TableType"] == "VIRTUAL_VIEW" and view["Parameters"]["presto_view"] == "true"
    assert view["ViewExpandedText"] == "/* Presto View */"
    prefix, encoded, suffix = view["ViewOriginalText"]["Fn::Join"][1]
    assert (prefix, suffix) == ("/* Presto View: ", " */")
    substituted = encoded["Fn::Base64"]["Fn::Sub"]
    assert re.findall(r"\$\{([^}]*)\}", substituted) == ["LakeDatabase"]  # the one name CloudFormation fills in
    # What Athena decodes, for a database named "db" (CloudFormation substitutes, then encodes).
    decoded = json.loads(substituted.replace("${LakeDatabase}", "db"))
    assert decoded["originalSql"] == calls_sql() and "--" not in decoded["originalSql"]
    assert (decoded["catalog"], decoded["schema"]) == ("awsdatacatalog", "db")
    # The view's columns: what DuckDB says the SQL gives, the call's columns.
    described = lake_template.view_columns()
    assert list(described.items()) == list(COLUMNS.items())
    glue = {column["Name"]: column["Type"] for column in view["StorageDescriptor"]["Columns"]}
    assert glue == described
    assert decoded["columns"] == [
        {"name": name, "type": lake_template.trino_type(kind)} for name, kind in described.items()
    ]
    assert lake_template.trino_type("array<string>") == "array(varchar)"
    assert lake_template.trino_type("timestamp") == "timestamp(3)"


def test_the_delivery_stream_is_named_for_the_publisher_and_converts_to_the_table():
    assert STREAM["DeliveryStreamName"] == {"Fn::Sub": "${StackName}-call-changes"}
    assert STREAM["DeliveryStreamType"] == "DirectPut"
    assert DESTINATION["Prefix"] == "call_changes/dt=!{partitionKeyFromQuery:dt}/"
    assert DESTINATION["ErrorOutputPrefix"].startswith("errors/!{firehose:error-output-type}/")
    conversion = DESTINATION["DataFormatConversionConfiguration"]
    assert conversion["InputFormatConfiguration"]["Deserializer"] == {"HiveJsonSerDe": {"TimestampFormats": ["millis"]}}
    assert "ParquetSerDe" in conversion["OutputFormatConfiguration"]["Serializer"]
    assert conversion["SchemaConfiguration"]["TableName"] == table_input("CallChangesTable")["Name"]
    assert DESTINATION["BufferingHints"]["SizeInMBs"] >= 64
    processors = {
        processor["Type"]: {item["ParameterName"]: item["ParameterValue"] for item in processor["Parameters"]}
        for processor in DESTINATION["ProcessingConfiguration"]["Processors"]
    }
    assert processors["RecordDeAggregation"] == {"SubRecordType": "JSON"}
    assert processors["MetadataExtraction"]["MetadataExtractionQuery"] == "{dt: .dt}"
    assert DESTINATION["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert DESTINATION["CloudWatchLoggingOptions"]["Enabled"] is True


def test_the_delivery_role_reaches_the_lake_bucket_the_table_and_its_log_only():
    [role] = resources_of_type(LAKE, "AWS::IAM::Role").values()
    statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    resources = {statement["Sid"]: statement["Resource"] for statement in statements}
    assert resources["Lake"] == [{"Fn::GetAtt": ["LakeBucket", "Arn"]}, {"Fn::Sub": "${LakeBucket.Arn}/*"}]
    assert any("table/${LakeDatabase}/call_changes" in item["Fn::Sub"] for item in resources["Schema"])
    assert all(action.startswith("glue:GetTable") for action in statements[1]["Action"])
    assert "*" not in json.dumps(resources["Schema"]).replace("log-stream:*", "")


def test_outputs_and_the_workgroups_limits():
    assert {
        "DeliveryStreamName",
        "DeliveryStreamArn",
        "LakeBucketName",
        "GlueDatabaseName",
        "AthenaWorkGroupName",
    } <= set(LAKE["Outputs"])
    configuration = RESOURCES["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedLimit"}
    assert LAKE["Parameters"]["AthenaBytesScannedLimit"]["MinValue"] == 10_485_760
    assert configuration["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}


def test_the_publisher_puts_into_the_stream_this_template_names():
    """template.yaml's publisher puts into the nested stack's stream (its output), which
    is named <parent stack>-call-changes, as the publisher's IAM statement names it."""
    parent = load_template()
    variables = parent["Resources"]["ChangePublisherFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["DELIVERY_STREAM_NAME"] == {
        "Fn::If": ["LakeOn", {"Fn::GetAtt": ["Lake", "Outputs.DeliveryStreamName"]}, ""]
    }
    lake = parent["Resources"]["Lake"]
    assert lake["Properties"]["Location"] == "lake.yaml"
    assert lake["Properties"]["Parameters"]["StackName"] == {"Ref": "AWS::StackName"}
    assert LAKE["Outputs"]["DeliveryStreamName"]["Value"] == {"Ref": "DeliveryStream"}
    name = STREAM["DeliveryStreamName"]["Fn::Sub"].replace("${StackName}", "${AWS::StackName}")
    assert name == "${AWS::StackName}-call-changes"
    policies = json.dumps(parent["Resources"]["ChangePublisherFunction"]["Properties"]["Policies"])
    assert f"deliverystream/{name}" in policies
