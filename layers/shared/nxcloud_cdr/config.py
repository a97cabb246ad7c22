"""Configuration from the environment, validated once per container.

``template.yaml`` sets these variables; ``make local`` sets them from ``local.env``.
A wrong value fails the first invocation with a message naming the variable, rather
than storing records with a wrong time zone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import tzinfo
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .times import parse_zone


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    quarantine_table_name: str = Field(alias="QUARANTINE_TABLE_NAME", min_length=1)
    # Secrets Manager id of the push token; deployed stacks always use this.
    push_token_secret_id: str = Field(default="", alias="PUSH_TOKEN_SECRET_ID")
    # The token itself, for `make local` and tests only: the template never sets it.
    push_token: str = Field(default="", alias="PUSH_TOKEN", repr=False)
    push_token_max_age_seconds: int = Field(default=300, alias="PUSH_TOKEN_MAX_AGE_SECONDS", ge=0)
    nxcloud_timezone: str = Field(default="+08:00", alias="NXCLOUD_TIMEZONE")
    retention_days: int = Field(default=0, alias="RETENTION_DAYS", ge=0)
    quarantine_retention_days: int = Field(default=30, alias="QUARANTINE_RETENTION_DAYS", ge=1)
    max_body_bytes: int = Field(default=65536, alias="MAX_BODY_BYTES", ge=1024)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        parse_zone(self.nxcloud_timezone)
        if not self.push_token_secret_id and not self.push_token:
            raise ValueError("set PUSH_TOKEN_SECRET_ID (deployed) or PUSH_TOKEN (local runs)")
        return self

    @cached_property
    def zone(self) -> tzinfo:
        return parse_zone(self.nxcloud_timezone)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if environ is None else environ
        names = {field.alias for field in cls.model_fields.values() if field.alias}
        return cls.model_validate({name: source[name] for name in names if name in source})
