"""What template.yaml promises: the shape of the stack, and no secret in any file."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from devtools.template import create_table_requests, http_routes, load_template, resources_of_type, rule_failures
from tests.conftest import ALL_FUNCTIONS, ARCHIVER_FUNCTION, FUNCTIONS, PUBLISHER_FUNCTION, SYNC_FUNCTION, repo_path

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def test_one_function_per_push_type_on_one_http_api():
    routes = {route.function: route for route in http_routes(TEMPLATE)}

    assert set(routes) == set(FUNCTIONS)
    assert {route.route_key for route in routes.values()} == {
        "POST /v1/pns/call-result/{token}",
        "POST /v1/pns/binding-not-exist/{token}",
        "POST /v1/cc/report/{token}",
        "POST /v1/cc/call-log/{token}",
    }
    for name, route in routes.items():
        assert repo_path(route.code_uri, "app.py") == FUNCTIONS[name]
        event = next(iter(RESOURCES[name]["Properties"]["Events"].values()))
        assert event["Properties"]["ApiId"] == {"Ref": "PushApi"}
    assert RESOURCES["PushApi"]["Type"] == "AWS::Serverless::HttpApi"
    throttling = RESOURCES["PushApi"]["Properties"]["DefaultRouteSettings"]
    assert set(throttling) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}


def test_each_push_kind_knows_its_functions_route():
    from nxcloud_cdr.kinds import PUSH_KINDS

    routes = {route.function: route.path for route in http_routes(TEMPLATE)}
    for function, path in FUNCTIONS.items():
        [kind] = [kind for kind in PUSH_KINDS.values() if kind.name.upper() in path.read_text()]
        assert kind.path == routes[function]


def test_functions_and_layer_are_python313_x86_64():
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["x86_64"]
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    layer = RESOURCES["SharedLayer"]
    # layers/shared/Makefile builds it: packages for Lambda's platform, with bytecode.
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "x86_64"}
    makefile = repo_path("layers", "shared", "Makefile").read_text(encoding="utf-8")
    assert "build-SharedLayer:" in makefile and "--invalidation-mode unchecked-hash" in makefile
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    # requests in a layer of its own, for the sync alone.
    assert RESOURCES["SyncLayer"]["Metadata"] == layer["Metadata"]
    assert "build-SyncLayer:" in makefile
    assert RESOURCES["CcCdrSyncFunction"]["Properties"]["Layers"] == [{"Ref": "SyncLayer"}]
    assert all("Layers" not in RESOURCES[name]["Properties"] for name in FUNCTIONS)


@pytest.mark.parametrize("table", ["CallRecordsTable", "QuarantineTable"])
def test_tables_on_demand_pitr_encrypted_protected_with_ttl(table):
    props = RESOURCES[table]["Properties"]

    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}
    assert TEMPLATE["Parameters"]["TableDeletionProtection"]["Default"] == "true"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}


def test_store_code_and_template_agree_on_indexes():
    from nxcloud_cdr.items import SORT_KEY
    from nxcloud_cdr.lookups import INDEX_KEYS

    [records] = [
        r
        for r in create_table_requests(TEMPLATE, {"CallRecordsTable": "r", "QuarantineTable": "q"})
        if r["TableName"] == "r"
    ]
    indexes = {gsi["IndexName"]: gsi["KeySchema"] for gsi in records["GlobalSecondaryIndexes"]}
    assert indexes == {
        name: [{"AttributeName": key, "KeyType": "HASH"}, {"AttributeName": SORT_KEY, "KeyType": "RANGE"}]
        for name, key in INDEX_KEYS.items()
    }


def test_push_token_is_generated_not_written_anywhere():
    secret = RESOURCES["PushTokenSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert "SecretString" not in secret["Properties"]
    assert secret["Properties"]["GenerateSecretString"]["ExcludePunctuation"] is True
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["PUSH_TOKEN_SECRET_ID"] == {"Ref": "PushTokenSecret"}
    assert env["PUSH_TOKEN"] == ""  # declared for sam local invoke only; never a value


def test_sam_local_env_file_sets_only_declared_variables():
    # SAM CLI passes an --env-vars value only for a variable the template declares.
    declared = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    for path in repo_path("events", "env").glob("*.json"):
        overrides = json.loads(path.read_text(encoding="utf-8"))
        for scope, values in overrides.items():
            own = set(RESOURCES.get(scope, {}).get("Properties", {}).get("Environment", {}).get("Variables", {}))
            assert set(values) <= declared | own, (path.name, scope, set(values) - declared - own)


def test_functions_may_only_write_their_tables_and_read_the_token():
    for name in FUNCTIONS:
        policies = RESOURCES[name]["Properties"]["Policies"]
        statements = policies[0]["Statement"]
        actions = sorted(action for statement in statements for action in statement["Action"])
        assert actions == [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:UpdateItem",
        ]
        assert policies[1] == {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "PushTokenSecret"}}}


def test_outputs_name_every_push_url_and_the_tables():
    outputs = TEMPLATE["Outputs"]
    routes = {route.function: route.path for route in http_routes()}
    for name, function in (
        ("PnsCallResultUrl", "PnsCallResultFunction"),
        ("PnsBindingNotExistUrl", "PnsBindingNotExistFunction"),
        ("CcReportUrl", "CcReportFunction"),
    ):
        # Your domain when one is given (URLs that outlive the stack), else the API's own.
        condition, on_domain, on_api = outputs[name]["Value"]["Fn::If"]
        assert condition == "CustomDomainOn"
        path = routes[function].replace("{token}", "<token>")
        assert on_domain["Fn::Sub"] == "https://${CustomDomainName}" + path
        assert on_api["Fn::Sub"] == "https://${PushApi}.execute-api.${AWS::Region}.amazonaws.com" + path
    assert {"CallRecordsTableName", "QuarantineTableName", "PushTokenCommand"} <= set(outputs)


def test_a_custom_domain_without_its_certificate_is_refused_before_anything_is_created():
    assert rule_failures(TEMPLATE, {}) == []
    assert rule_failures(TEMPLATE, {"CustomDomainName": "push.example.com"}) != []
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    assert (
        rule_failures(TEMPLATE, {"CustomDomainName": "push.example.com", "CustomDomainCertificateArn": certificate})
        == []
    )


def test_every_function_log_group_has_retention():
    log_groups = resources_of_type(TEMPLATE, "AWS::Logs::LogGroup")
    named = {
        group["Properties"]["LogGroupName"]["Fn::Sub"]
        for group in log_groups.values()
        if "LogGroupName" in group["Properties"]
    }
    assert named == {f"/aws/lambda/${{{name}}}" for name in ALL_FUNCTIONS} | {
        "/aws/vendedlogs/${AWS::StackName}/push-api-access",
        "/aws/events/${AWS::StackName}-calls",
    }
    # Every log group, the API's access log included, expires (the change events' copy
    # after EventLogDays of its own).
    assert all(
        group["Properties"]["RetentionInDays"]
        == {"Ref": "EventLogDays" if name == "ChangeEventLog" else "LogRetentionDays"}
        for name, group in log_groups.items()
    )
    assert set(resources_of_type(TEMPLATE, "AWS::Serverless::Function")) == set(ALL_FUNCTIONS)


SECRET_LIKE = re.compile(r"(?i)(secret|token|password|access_?key)")


def test_no_parameter_default_looks_like_a_secret():
    for name, parameter in TEMPLATE["Parameters"].items():
        # A number (PushTokenOverlapHours) is a setting, never a secret.
        assert not SECRET_LIKE.search(name) or "Default" not in parameter or parameter["Type"] == "Number", name


def test_previous_push_token_overlap_is_a_parameter_of_the_push_functions():
    parameter = TEMPLATE["Parameters"]["PushTokenOverlapHours"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 72, 1)
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["PUSH_TOKEN_OVERLAP_HOURS"] == {"Ref": "PushTokenOverlapHours"}


def test_samconfig_holds_no_secret():
    config = tomllib.loads(repo_path("samconfig.toml").read_text())
    flat = repr(config)
    assert "parameter_overrides" not in flat or not SECRET_LIKE.search(flat.split("parameter_overrides")[1])
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM CAPABILITY_AUTO_EXPAND"  # the monitoring is nested
    assert deploy["confirm_changeset"] is True


def test_sync_runs_on_a_schedule_with_credentials_from_an_empty_secret():
    sync = RESOURCES[SYNC_FUNCTION]["Properties"]
    schedule = sync["Events"]["Schedule"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "SyncSchedule"}
    assert TEMPLATE["Parameters"]["SyncSchedule"]["Default"] == "rate(10 minutes)"
    assert sync["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    env = sync["Environment"]["Variables"]
    assert env["NXCLOUD_API_BASE_URL"] == {"Ref": "NxcloudApiBaseUrl"}
    assert env["NXCLOUD_CREDENTIALS_SECRET_ID"] == {"Ref": "NxcloudApiCredentialsSecret"}
    secret = RESOURCES["NxcloudApiCredentialsSecret"]["Properties"]["SecretString"]
    assert json.loads(secret) == {"accessKey": "", "accessSecret": ""}  # placeholders, no values
    # No reserved concurrency: a new account's limit of 10 cannot spare it; a lease in the table serialises runs.
    assert "ReservedConcurrentExecutions" not in sync
    assert sync["Timeout"] == 300


def test_lambda_never_filters_out_the_metrics_lines():
    # Lambda reads a JSON line without a level (Powertools' metrics lines) as INFO: an
    # application log level above INFO would drop every metric the alarms are built on.
    logging_config = TEMPLATE["Globals"]["Function"]["LoggingConfig"]
    assert logging_config["LogFormat"] == "JSON"
    assert logging_config["ApplicationLogLevel"] == {"Ref": "LogLevel"}
    assert set(TEMPLATE["Parameters"]["LogLevel"]["AllowedValues"]) <= {"TRACE", "DEBUG", "INFO"}
    # And no function sets a level of its own.
    assert all(
        "LoggingConfig" not in body["Properties"]
        for body in resources_of_type(TEMPLATE, "AWS::Serverless::Function").values()
    )


def test_every_parameter_is_in_the_readme_deploy_table():
    readme = repo_path("README.md").read_text(encoding="utf-8")
    deploy = readme[readme.index("## Deploy") : readme.index("## Configure NXCLOUD")]
    rows = [line for line in deploy.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`(\w+)`", row.split(" | ")[0])}
    assert set(TEMPLATE["Parameters"]) - named == set()


def test_licence_and_changelog_are_there():
    assert "Permission is hereby granted" in repo_path("LICENSE").read_text(encoding="utf-8")
    changelog = repo_path("CHANGELOG.md").read_text(encoding="utf-8")
    # A parameter added since the changelog began is announced in it.
    for name in ("DidLookup", "CustomerBindIdLookup", "LambdaReportLogLevel"):
        assert name in changelog


def test_every_static_check_skipped_says_why():
    skipped = [
        (name, skip)
        for name, body in RESOURCES.items()
        for skip in body.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert len(skipped) >= 20  # the decisions are in the template, next to what they are about
    for name, skip in skipped:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), name
        assert len(skip.get("comment", "")) > 30, (name, skip["id"])


def test_one_stream_with_both_images_feeds_the_archiver_and_the_change_publisher():
    from devtools.streams import matches
    from devtools.template import stream_sources

    assert RESOURCES["CallRecordsTable"]["Properties"]["StreamSpecification"] == {
        "StreamViewType": "NEW_AND_OLD_IMAGES"
    }
    sources = {source.function: source for source in stream_sources(TEMPLATE)}
    assert set(sources) == {ARCHIVER_FUNCTION, PUBLISHER_FUNCTION}
    stream = RESOURCES[PUBLISHER_FUNCTION]["Properties"]["Events"]["Stream"]["Properties"]
    assert stream["Stream"] == {"Fn::GetAtt": ["CallRecordsTable", "StreamArn"]}
    assert (stream["StartingPosition"], stream["BatchSize"], stream["MaximumBatchingWindowInSeconds"]) == (
        "TRIM_HORIZON",
        100,
        1,
    )
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and stream["BisectBatchOnFunctionError"]
    assert stream["MaximumRecordAgeInSeconds"] == 86400 and stream["MaximumRetryAttempts"] >= 1
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ChangeEventFailuresQueue", "Arn"]
    }
    queue = RESOURCES["ChangeEventFailuresQueue"]["Properties"]
    assert queue == {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}

    # The publisher's filter passes call items (and their versions, which its code skips),
    # never the sync's state; the archiver's still passes a pending recording, old image or not.
    def record(pk: str, sk: str, **new: object) -> dict[str, object]:
        image = {"pk": {"S": pk}, "sk": {"S": sk}, **{name: {"S": value} for name, value in new.items()}}
        return {
            "eventName": "MODIFY",
            "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}, "NewImage": image, "OldImage": image},
        }

    [publisher] = sources[PUBLISHER_FUNCTION].patterns
    assert matches(publisher, record("ID#1", "pns_call_result"))
    assert not matches(publisher, record("SYNC#cc_cdr", "checkpoint"))
    [archiver] = sources[ARCHIVER_FUNCTION].patterns
    assert matches(archiver, record("ID#1", "pns_call_result", recordingState="pending"))
    assert not matches(archiver, record("ID#1", "pns_call_result", recordingState="archived"))


def test_change_events_have_a_bus_a_salt_and_outputs():
    assert RESOURCES["ChangeEventBus"]["Type"] == "AWS::Events::EventBus"
    outputs = TEMPLATE["Outputs"]
    assert outputs["EventBusName"]["Value"] == {"Ref": "ChangeEventBus"}
    assert outputs["EventBusArn"]["Value"] == {"Fn::GetAtt": ["ChangeEventBus", "Arn"]}
    numbers = TEMPLATE["Parameters"]["PhoneNumbers"]
    assert (numbers["Default"], numbers["AllowedValues"]) == ("full", ["full", "hashed", "none"])
    salt = RESOURCES["PhoneNumberSaltSecret"]
    assert "Condition" not in salt and "SecretString" not in salt["Properties"]
    generated = salt["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32 and generated["ExcludePunctuation"] is True
    env = RESOURCES[PUBLISHER_FUNCTION]["Properties"]["Environment"]["Variables"]
    assert env["PHONE_NUMBERS"] == {"Ref": "PhoneNumbers"}
