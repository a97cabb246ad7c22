"""Reading secrets from Secrets Manager (the push token, NXCLOUD's API credentials)."""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from . import aws_clients

# A read runs inside a push: a hanging Secrets Manager must not take the function's
# whole timeout (a failed refresh of the push token falls back on the cached value).
SECRETS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"})


def secrets_client() -> Any:
    """A plain client (Powertools ``parameters`` costs ~170 ms more to import).
    Callers that read often keep theirs for the container's lifetime."""
    return aws_clients.client("secretsmanager", SECRETS_CONFIG)


def secret_string(secret_id: str, client: Any = None) -> str:
    client = client or secrets_client()
    return str(client.get_secret_value(SecretId=secret_id)["SecretString"])
