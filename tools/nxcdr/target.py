"""The stack a command runs against: its store, clients and settings, from the local
stack's state file or a deployed stack's outputs and parameters."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from nxcloud_cdr.kinds import PUSH_KINDS
from nxcloud_cdr.store import CallStore

# A run of the sync may take the function's whole timeout; an Invoke is never repeated.
INVOKE_CONFIG = Config(read_timeout=960, connect_timeout=10, retries={"total_max_attempts": 1})
# The repository (tools/ is at its top), where `make local` (devtools/local_stack.py)
# writes the local stack's state.
REPO = Path(__file__).resolve().parents[2]
LOCAL_STATE = Path(os.environ.get("NXCDR_LOCAL_STATE") or REPO / ".local" / "stack.json")
# The template's PushTokenOverlapHours default, for stacks that predate the parameter.
DEFAULT_OVERLAP_HOURS = 72
DEFAULT_TIMEZONE = "+08:00"


@dataclass
class Lake:
    """The stack's way out: its bus, the lake's delivery stream, SQL over the lake (on
    Athena for a deployed stack, DuckDB locally), and where its events can be read."""

    events: Any
    bus_name: str
    firehose: Any
    # Empty: the stack has no lake (its events alone).
    stream_name: str
    # How phone numbers appear (PhoneNumbers), and the salt secret of ``hashed``.
    number_mode: str
    salt_secret_id: str
    read_secret: Callable[[str], str]
    # The delivery stream's buffer interval (LakeBufferSeconds), which a backfill paces
    # the call dates it sends to (Firehose's partition limit); 0: no pacing, as the
    # local stand-in has no such limit.
    buffer_seconds: int = 0
    # The local stack's lake and sink (None: a deployed stack).
    local_lake: Path | None = None
    local_events: Path | None = None
    athena: Any = None
    workgroup: str = ""
    database: str = ""
    logs: Any = None
    events_log_group: str = ""


@dataclass
class Target:
    store: CallStore
    lambda_client: Any
    sync_function: str
    api_url: str
    # Read only when needed (a replay): for a deployed stack it is a Secrets Manager call.
    push_token: Callable[[], str]
    # Deployed stacks only: makes a value the secret's AWSCURRENT version (a rotation).
    put_push_token: Callable[[str], None] | None = None
    # When the last rotation made the current token (None: never rotated).
    last_rotation: Callable[[], datetime | None] = lambda: None
    stack: str | None = None
    overlap_hours: int = DEFAULT_OVERLAP_HOURS
    # The stack's NxcloudTimezone: how the normalised fields are rebuilt from raw.
    timezone: str = DEFAULT_TIMEZONE
    # The recordings bucket and an S3 client for it (None: a stack from before recordings).
    s3: Any = None
    recordings_bucket: str | None = None
    # None: a stack from before change events.
    lake: Lake | None = None


NOT_RUNNING = "the local stack is not running: start it with `make local`, or give --stack NAME"


class _StackNotRunning:
    """What only the running local stack has (its store, functions, API, bus): any use
    of it ends the command with the one line saying so. Its lake stays readable."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # Python's own probes (copy, pickle...) find nothing, as on any object
            raise AttributeError(name)
        raise SystemExit(NOT_RUNNING)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise SystemExit(NOT_RUNNING)


def local_target(state_path: Path | None = None) -> Target:
    """The running local stack (its state file: NXCDR_LOCAL_STATE, read now, else
    .local/stack.json). When none runs, the lake it left on disk is still the target of
    sql, events and lake flush; any other command says the stack is not running."""
    if state_path is None:
        state_path = Path(os.environ.get("NXCDR_LOCAL_STATE") or LOCAL_STATE)
    if not state_path.exists():
        return _stopped_local_target(state_path)
    state = json.loads(state_path.read_text(encoding="utf-8"))
    # The local stack ignores credentials; boto3 only needs some.
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    dynamodb = session.client("dynamodb", endpoint_url=state["dynamodb"])
    return Target(
        store=CallStore(dynamodb, state["tables"]["CallRecordsTable"], state["tables"]["QuarantineTable"]),
        lambda_client=session.client("lambda", endpoint_url=state["api"], config=INVOKE_CONFIG),
        sync_function=state["functions"]["CcCdrSyncFunction"],
        api_url=state["api"],
        push_token=lambda: str(state["pushToken"]),
        timezone=str(state.get("timezone") or DEFAULT_TIMEZONE),
        s3=session.client("s3", endpoint_url=state["s3"]) if state.get("s3") else None,
        recordings_bucket=state.get("recordingsBucket"),
        lake=_local_lake(session, state.get("lake")),
    )


def _stopped_local_target(state_path: Path) -> Target:
    from devtools.lake_local import local_paths  # noqa: PLC0415 - development code, for the local stack only

    paths = local_paths(state_path)
    not_running: Any = _StackNotRunning()
    return Target(
        store=not_running,
        lambda_client=not_running,
        sync_function=not_running,
        api_url=not_running,
        push_token=not_running,
        s3=not_running,
        recordings_bucket=not_running,
        lake=Lake(
            events=not_running,
            bus_name=not_running,
            firehose=not_running,
            stream_name=not_running,
            number_mode="full",
            salt_secret_id="",
            read_secret=not_running,
            local_lake=paths.lake,
            local_events=paths.events,
        ),
    )


def _local_lake(session: boto3.Session, lake: dict[str, Any] | None) -> Lake | None:
    if not lake:
        return None
    return Lake(
        events=session.client("events", endpoint_url=lake["endpoint"]),
        bus_name=str(lake["eventBus"]),
        firehose=session.client("firehose", endpoint_url=lake["endpoint"]),
        stream_name=str(lake["deliveryStream"]),
        buffer_seconds=0,
        number_mode="full",
        salt_secret_id="",
        read_secret=lambda _: "",
        local_lake=Path(lake["dir"]),
        local_events=Path(lake["eventsFile"]),
    )


def deployed_target(stack: str, profile: str | None, region: str | None) -> Target:
    session = boto3.Session(profile_name=profile, region_name=region)
    description = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in description.get("Outputs", [])}
    parameters = {item["ParameterKey"]: item.get("ParameterValue") for item in description.get("Parameters", [])}
    needed = (
        "CallRecordsTableName",
        "QuarantineTableName",
        "CcCdrSyncFunctionName",
        "PushApiUrl",
        "PushTokenSecretArn",
    )
    if missing := [name for name in needed if name not in outputs]:
        raise SystemExit(f"stack {stack} has no output {', '.join(missing)}: is it an nxcloud-cdr stack?")

    secret_id = outputs["PushTokenSecretArn"]
    secrets_manager = session.client("secretsmanager")

    def put_push_token(value: str) -> None:
        # Secrets Manager labels the new version AWSCURRENT and moves AWSPREVIOUS to
        # the version that was current: the functions accept both during the overlap.
        secrets_manager.put_secret_value(SecretId=secret_id, SecretString=value)

    def last_rotation() -> datetime | None:
        try:
            secrets_manager.get_secret_value(SecretId=secret_id, VersionStage="AWSPREVIOUS")
        except secrets_manager.exceptions.ResourceNotFoundException:
            return None
        created: datetime = secrets_manager.get_secret_value(SecretId=secret_id)["CreatedDate"]
        return created

    return Target(
        store=CallStore(session.client("dynamodb"), outputs["CallRecordsTableName"], outputs["QuarantineTableName"]),
        lambda_client=session.client("lambda", config=INVOKE_CONFIG),
        sync_function=outputs["CcCdrSyncFunctionName"],
        api_url=outputs["PushApiUrl"],
        push_token=lambda: str(secrets_manager.get_secret_value(SecretId=secret_id)["SecretString"]).strip(),
        put_push_token=put_push_token,
        last_rotation=last_rotation,
        stack=stack,
        overlap_hours=int(parameters.get("PushTokenOverlapHours") or DEFAULT_OVERLAP_HOURS),
        timezone=str(parameters.get("NxcloudTimezone") or DEFAULT_TIMEZONE),
        # SigV4, so that a presigned URL works under the bucket's TLS-only, encrypted policy.
        s3=session.client("s3", config=Config(signature_version="s3v4")),
        recordings_bucket=outputs.get("RecordingsBucketName"),
        lake=_deployed_lake(session, outputs, parameters) if "EventBusName" in outputs else None,
    )


def _deployed_lake(session: boto3.Session, outputs: dict[str, str], parameters: dict[str, Any]) -> Lake:
    secrets_manager = session.client("secretsmanager")
    return Lake(
        events=session.client("events"),
        bus_name=outputs["EventBusName"],
        firehose=session.client("firehose"),
        stream_name=outputs.get("LakeDeliveryStreamName", ""),
        # 300: the template's default, for a stack that predates the parameter.
        buffer_seconds=int(parameters.get("LakeBufferSeconds") or 300),
        number_mode=str(parameters.get("PhoneNumbers") or "full"),
        salt_secret_id=outputs.get("PhoneNumberSaltSecretArn", ""),
        read_secret=lambda secret_id: str(secrets_manager.get_secret_value(SecretId=secret_id)["SecretString"]),
        athena=session.client("athena"),
        workgroup=outputs.get("AthenaWorkGroupName", ""),
        database=outputs.get("GlueDatabaseName", ""),
        logs=session.client("logs"),
        events_log_group=outputs.get("EventLogGroupName", ""),
    )


def push_urls(target: Target, token: str) -> dict[str, str]:
    """The push URL of each push kind, with ``token`` in it."""
    base = target.api_url.rstrip("/")
    return {name: base + kind.path.replace("{token}", token) for name, kind in PUSH_KINDS.items()}
