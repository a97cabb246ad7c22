"""Configuration from the environment, checked once per container.

``template.yaml`` sets these variables; local runs set them from ``local.env``. A wrong
value fails the first invocation with a message naming the variable, rather than
storing records with a wrong time zone. Messages never quote a value: some are secrets.

Plain dataclasses rather than pydantic settings: building two more pydantic models
cost every cold start about 10 ms, for a dozen variables read once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from functools import cached_property
from typing import Any, Self

from .times import parse_zone


def setting(
    env: str,
    default: Any = dataclasses.MISSING,
    *,
    minimum: float | None = None,
    above: float | None = None,
    pattern: str | None = None,
    secret: bool = False,
) -> Any:
    """A field read from the environment variable ``env``, within the bounds given
    (``minimum`` inclusive, ``above`` exclusive; a string's ``minimum`` is its length)."""
    limits = {"env": env, "minimum": minimum, "above": above, "pattern": pattern}
    return field(default=default, repr=not secret, metadata=limits)


# ASCII digits only (int() would read "٣" as 3); a whole number may be written "30.0"
# (CloudFormation Number parameters allow it).
_INTEGER = re.compile(r"[+-]?[0-9]+(\.0*)?")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _read(spec: dataclasses.Field[Any], text: str) -> Any:
    env, minimum, above = spec.metadata["env"], spec.metadata["minimum"], spec.metadata["above"]
    kind = spec.type if isinstance(spec.type, str) else spec.type.__name__
    value: Any = text
    if kind == "int":
        if not _INTEGER.fullmatch(text.strip()):
            raise ValueError(f"{env} must be a whole number")
        value = int(text.strip().split(".")[0])
    elif kind == "float":
        if not _NUMBER.fullmatch(text.strip()):
            raise ValueError(f"{env} must be a number")
        value = float(text.strip())
        if not math.isfinite(value):
            raise ValueError(f"{env} must be a finite number")
    size = len(value) if isinstance(value, str) else value
    if minimum is not None and size < minimum:
        raise ValueError(f"{env} must be at least {minimum:g}{' characters long' if kind == 'str' else ''}")
    if above is not None and size <= above:
        raise ValueError(f"{env} must be greater than {above:g}")
    if spec.metadata["pattern"] and not re.fullmatch(spec.metadata["pattern"], value):
        raise ValueError(f"{env} must match {spec.metadata['pattern']}")
    return value


@dataclass(frozen=True)
class StoreSettings:
    """What every function that writes records needs."""

    table_name: str = setting("TABLE_NAME", minimum=1)
    quarantine_table_name: str = setting("QUARANTINE_TABLE_NAME", minimum=1)
    nxcloud_timezone: str = setting("NXCLOUD_TIMEZONE", "+08:00")
    retention_days: int = setting("RETENTION_DAYS", 0, minimum=0)
    quarantine_retention_days: int = setting("QUARANTINE_RETENTION_DAYS", 30, minimum=1)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Rules across fields; subclasses add theirs."""
        parse_zone(self.nxcloud_timezone)

    @cached_property
    def zone(self) -> tzinfo:
        return parse_zone(self.nxcloud_timezone)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            env = spec.metadata["env"]
            if env in source:
                values[spec.name] = _read(spec, source[env])
            elif spec.default is dataclasses.MISSING:
                raise ValueError(f"{env} is not set")
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class PushSettings(StoreSettings):
    # Secrets Manager id of the push token; deployed stacks always use this.
    push_token_secret_id: str = setting("PUSH_TOKEN_SECRET_ID", "")
    # The token itself, for local runs and tests only: the template declares it empty.
    push_token: str = setting("PUSH_TOKEN", "", secret=True)
    # The token before a rotation, also accepted while set (local runs and tests only;
    # deployed stacks read the secret's AWSPREVIOUS version).
    push_token_previous: str = setting("PUSH_TOKEN_PREVIOUS", "", secret=True)
    push_token_max_age_seconds: int = setting("PUSH_TOKEN_MAX_AGE_SECONDS", 300, minimum=0)
    # How long after a rotation the previous token is still accepted (template
    # parameter PushTokenOverlapHours): the time to give NXCLOUD the new URLs.
    push_token_overlap_hours: int = setting("PUSH_TOKEN_OVERLAP_HOURS", 72, minimum=1)
    max_body_bytes: int = setting("MAX_BODY_BYTES", 65536, minimum=1024)

    def check(self) -> None:
        super().check()
        if not self.push_token_secret_id and not self.push_token:
            raise ValueError("set PUSH_TOKEN_SECRET_ID (deployed) or PUSH_TOKEN (local runs)")
        if self.push_token_previous and not self.push_token:
            raise ValueError("PUSH_TOKEN_PREVIOUS is for local runs: set PUSH_TOKEN beside it")


# Hosts plain HTTP may reach: this machine alone (the stand-in NXCLOUD of local runs).
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _same_host_for_requests(url: str, hostname: str) -> bool:
    """Whether requests (urllib3's parser) sends to the host the check read: the two
    parsers disagree on a backslash before an ``@`` (``http://evil\\@127.0.0.1``), and
    plain http to anything but this machine is what the check is for. A URL with
    user info or a backslash is never one the local stand-in needs."""
    from urllib3.util import parse_url  # noqa: PLC0415 - the sync's settings alone

    if "@" in url or "\\" in url or any(character.isspace() or ord(character) < 32 for character in url):
        return False
    try:
        host = (parse_url(url).host or "").strip("[]").lower()
    except ValueError:
        return False
    return host == hostname


def api_url_problem(url: str) -> str | None:
    """Why the sync must not send its signed requests to ``url``; None when it may.
    HTTPS only: a signature is MD5 over visible fields and the secret, so one request
    captured in clear text lets a weak secret be found offline."""
    from urllib.parse import urlsplit  # noqa: PLC0415 - the sync's settings alone

    try:
        parts = urlsplit(url)
        hostname = parts.hostname or ""
    except ValueError:
        hostname = ""
    else:
        if parts.scheme == "https" and hostname:
            return None
        if parts.scheme == "http" and hostname in _LOOPBACK and _same_host_for_requests(url, hostname):
            return None
    return f"{url[:100]!r} is not an https:// URL (plain http only to this machine, for the local stand-in)"


@dataclass(frozen=True)
class SyncSettings(StoreSettings):
    api_base_url: str = setting("NXCLOUD_API_BASE_URL", "https://api2.nxcloud.com", minimum=8)
    # Secrets Manager id of {"accessKey": ..., "accessSecret": ...}; deployed stacks use this.
    credentials_secret_id: str = setting("NXCLOUD_CREDENTIALS_SECRET_ID", "")
    # The credentials themselves, for local runs and tests only.
    access_key: str = setting("NXCLOUD_ACCESS_KEY", "")
    access_secret: str = setting("NXCLOUD_ACCESS_SECRET", "", secret=True)
    sign_algorithm: str = setting("NXCLOUD_SIGN_ALGORITHM", "md5", pattern="md5|sha256")
    window_max_seconds: int = setting("SYNC_WINDOW_MAX_SECONDS", 3600, minimum=60)
    overlap_seconds: int = setting("SYNC_OVERLAP_SECONDS", 600, minimum=0)
    delay_seconds: int = setting("SYNC_DELAY_SECONDS", 120, minimum=0)
    initial_lookback_seconds: int = setting("SYNC_INITIAL_LOOKBACK_SECONDS", 86400, minimum=60)
    stop_margin_seconds: int = setting("SYNC_STOP_MARGIN_SECONDS", 30, minimum=1)
    read_timeout_seconds: float = setting("NXCLOUD_READ_TIMEOUT_SECONDS", 30.0, above=0)
    max_attempts: int = setting("NXCLOUD_MAX_ATTEMPTS", 5, minimum=1)
    backoff_seconds: float = setting("NXCLOUD_BACKOFF_SECONDS", 1.0, minimum=0)

    def check(self) -> None:
        super().check()
        problem = api_url_problem(self.api_base_url)
        if problem:
            raise ValueError(f"NXCLOUD_API_BASE_URL: {problem}")
        if self.overlap_seconds >= self.window_max_seconds:
            raise ValueError("SYNC_OVERLAP_SECONDS must be smaller than SYNC_WINDOW_MAX_SECONDS, or no run progresses")


@dataclass(frozen=True)
class RecordingSettings(StoreSettings):
    """The recording archiver's (template parameters Recording*)."""

    bucket: str = setting("RECORDINGS_BUCKET", "")
    # Comma-separated host names, "*.example.com" for a domain's hosts.
    hosts: str = setting("RECORDING_HOSTS", "remote.record.nxcloud.com,*.nxcloud.com", minimum=1)
    max_megabytes: int = setting("RECORDING_MAX_MEGABYTES", 200, minimum=1)
    # Each read of the download (a host that stops answering) and the whole download.
    timeout_seconds: float = setting("RECORDING_TIMEOUT_SECONDS", 20.0, above=0)
    download_seconds: float = setting("RECORDING_DOWNLOAD_SECONDS", 120.0, above=0)
    attempts: int = setting("RECORDING_ATTEMPTS", 3, minimum=1)
    backoff_seconds: float = setting("RECORDING_BACKOFF_SECONDS", 2.0, minimum=0)
    # How long after its first failure a recording that may pass is retried (hourly).
    retry_hours: float = setting("RECORDING_RETRY_HOURS", 24.0, minimum=0)
    # Where a recording the archiver gives up on is reported (the stream's on-failure queue).
    failures_queue_url: str = setting("RECORDING_FAILURES_QUEUE_URL", "")
    # Local runs and tests only (the template declares them empty): addresses fetched
    # although not public, and a CA bundle to trust (the local stand-in's).
    allowed_networks: str = setting("RECORDING_ALLOWED_NETWORKS", "")
    ca_file: str = setting("RECORDING_CA_FILE", "")

    def check(self) -> None:
        super().check()
        if not self.bucket:
            raise ValueError("RECORDINGS_BUCKET is not set")
        hosts = [host.strip() for host in self.hosts.split(",") if host.strip()]
        if not hosts:
            raise ValueError("RECORDING_HOSTS must name at least one host")
        for host in hosts:
            # "*.com" would allow every .com host: a pattern names a domain of two labels at least.
            if host.startswith("*.") and len(host[2:].strip(".").split(".")) < 2:
                raise ValueError("RECORDING_HOSTS: a *. pattern needs a domain of two labels at least (*.nxcloud.com)")
            if "*" in host[2:] or ("*" in host and not host.startswith("*.")):
                raise ValueError("RECORDING_HOSTS: * only as a whole first label (*.nxcloud.com)")
        import ipaddress  # noqa: PLC0415 - the archiver's alone

        try:
            for part in self.allowed_networks.split(","):
                if part.strip():
                    ipaddress.ip_network(part.strip(), strict=False)
        except ValueError as exc:
            raise ValueError("RECORDING_ALLOWED_NETWORKS must be comma-separated networks (CIDR)") from exc


@dataclass(frozen=True)
class PublisherSettings(StoreSettings):
    """The change publisher's (template parameter PhoneNumbers, the bus and the lake's
    delivery stream); ``NXCLOUD_TIMEZONE`` is the zone the calls' columns are read in."""

    event_bus_name: str = setting("EVENT_BUS_NAME", "")
    # Empty: no lake (the events alone).
    delivery_stream_name: str = setting("DELIVERY_STREAM_NAME", "")
    phone_numbers: str = setting("PHONE_NUMBERS", "full", pattern="full|hashed|none")
    # The secret whose SecretString is the salt of hashed numbers (read only when hashed).
    phone_number_salt_secret_id: str = setting("PHONE_NUMBER_SALT_SECRET_ID", "")

    def check(self) -> None:
        super().check()
        if not self.event_bus_name:
            raise ValueError("EVENT_BUS_NAME is not set")
        if self.phone_numbers == "hashed" and not self.phone_number_salt_secret_id:
            # Never events with clear numbers where hashed ones were asked for.
            raise ValueError("PHONE_NUMBERS=hashed needs PHONE_NUMBER_SALT_SECRET_ID")
