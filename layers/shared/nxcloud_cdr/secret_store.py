"""Reading secrets from Secrets Manager (the push token, NXCLOUD's API credentials)."""

from __future__ import annotations

import boto3


def secret_string(secret_id: str) -> str:
    client = boto3.client("secretsmanager")
    return str(client.get_secret_value(SecretId=secret_id)["SecretString"])
