"""Configuration from the environment, validated once per container.

``template.yaml`` sets these variables; local runs set them from ``local.env``. A wrong
value fails the first invocation with a message naming the variable, rather than
storing records with a wrong time zone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import tzinfo
from functools import cached_property
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .times import parse_zone


class StoreSettings(BaseModel):
    """What every function that writes records needs."""

    # A validation error would otherwise quote the environment, secrets included.
    model_config = ConfigDict(frozen=True, populate_by_name=True, hide_input_in_errors=True)

    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    quarantine_table_name: str = Field(alias="QUARANTINE_TABLE_NAME", min_length=1)
    nxcloud_timezone: str = Field(default="+08:00", alias="NXCLOUD_TIMEZONE")
    retention_days: int = Field(default=0, alias="RETENTION_DAYS", ge=0)
    quarantine_retention_days: int = Field(default=30, alias="QUARANTINE_RETENTION_DAYS", ge=1)

    @model_validator(mode="after")
    def _check_zone(self) -> Self:
        parse_zone(self.nxcloud_timezone)
        return self

    @cached_property
    def zone(self) -> tzinfo:
        return parse_zone(self.nxcloud_timezone)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        source = os.environ if environ is None else environ
        names = {field.alias for field in cls.model_fields.values() if field.alias}
        return cls.model_validate({name: source[name] for name in names if name in source})


class PushSettings(StoreSettings):
    # Secrets Manager id of the push token; deployed stacks always use this.
    push_token_secret_id: str = Field(default="", alias="PUSH_TOKEN_SECRET_ID")
    # The token itself, for local runs and tests only: the template never sets it.
    push_token: str = Field(default="", alias="PUSH_TOKEN", repr=False)
    # The token before a rotation, also accepted while set (local runs and tests only;
    # deployed stacks read the secret's AWSPREVIOUS version).
    push_token_previous: str = Field(default="", alias="PUSH_TOKEN_PREVIOUS", repr=False)
    push_token_max_age_seconds: int = Field(default=300, alias="PUSH_TOKEN_MAX_AGE_SECONDS", ge=0)
    # How long after a rotation the previous token is still accepted (template
    # parameter PushTokenOverlapHours): the time to give NXCLOUD the new URLs.
    push_token_overlap_hours: int = Field(default=72, alias="PUSH_TOKEN_OVERLAP_HOURS", ge=1)
    max_body_bytes: int = Field(default=65536, alias="MAX_BODY_BYTES", ge=1024)

    @model_validator(mode="after")
    def _check_token(self) -> Self:
        if not self.push_token_secret_id and not self.push_token:
            raise ValueError("set PUSH_TOKEN_SECRET_ID (deployed) or PUSH_TOKEN (local runs)")
        if self.push_token_previous and not self.push_token:
            raise ValueError("PUSH_TOKEN_PREVIOUS is for local runs: set PUSH_TOKEN beside it")
        return self


class SyncSettings(StoreSettings):
    api_base_url: str = Field(default="https://api2.nxcloud.com", alias="NXCLOUD_API_BASE_URL", min_length=8)
    # Secrets Manager id of {"accessKey": ..., "accessSecret": ...}; deployed stacks use this.
    credentials_secret_id: str = Field(default="", alias="NXCLOUD_CREDENTIALS_SECRET_ID")
    # The credentials themselves, for local runs and tests only.
    access_key: str = Field(default="", alias="NXCLOUD_ACCESS_KEY")
    access_secret: str = Field(default="", alias="NXCLOUD_ACCESS_SECRET", repr=False)
    sign_algorithm: str = Field(default="md5", alias="NXCLOUD_SIGN_ALGORITHM", pattern="^(md5|sha256)$")
    window_max_seconds: int = Field(default=3600, alias="SYNC_WINDOW_MAX_SECONDS", ge=60)
    overlap_seconds: int = Field(default=600, alias="SYNC_OVERLAP_SECONDS", ge=0)
    delay_seconds: int = Field(default=120, alias="SYNC_DELAY_SECONDS", ge=0)
    initial_lookback_seconds: int = Field(default=86400, alias="SYNC_INITIAL_LOOKBACK_SECONDS", ge=60)
    stop_margin_seconds: int = Field(default=30, alias="SYNC_STOP_MARGIN_SECONDS", ge=1)
    read_timeout_seconds: float = Field(default=30.0, alias="NXCLOUD_READ_TIMEOUT_SECONDS", gt=0)
    max_attempts: int = Field(default=5, alias="NXCLOUD_MAX_ATTEMPTS", ge=1)
    backoff_seconds: float = Field(default=1.0, alias="NXCLOUD_BACKOFF_SECONDS", ge=0)

    @model_validator(mode="after")
    def _check_windows(self) -> Self:
        if self.overlap_seconds >= self.window_max_seconds:
            raise ValueError("SYNC_OVERLAP_SECONDS must be smaller than SYNC_WINDOW_MAX_SECONDS, or no run progresses")
        return self
