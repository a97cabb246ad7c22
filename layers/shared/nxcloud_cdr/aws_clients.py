"""AWS clients built from botocore, without importing boto3.

``import boto3`` also imports s3transfer and boto3's resource layer, which no
function here uses: about 50 ms of every cold start. A botocore session reads the
same credentials, region and ``AWS_ENDPOINT_URL_<SERVICE>`` settings as boto3.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_session: botocore.session.Session | None = None


def _botocore_session() -> botocore.session.Session:
    # One session per container: it caches the service models and credentials.
    global _session
    if _session is None:
        _session = botocore.session.get_session()
    return _session


def client(service: str, config: Config | None = None) -> Any:
    return _botocore_session().create_client(service, config=config)


def dynamodb(config: Config | None = None) -> DynamoDBClient:
    """A DynamoDB client; ``DYNAMODB_ENDPOINT_URL``, when not empty, points it at
    another DynamoDB (a local one for ``sam local invoke``)."""
    endpoint = os.environ.get("DYNAMODB_ENDPOINT_URL") or None
    made: Any = _botocore_session().create_client("dynamodb", config=config, endpoint_url=endpoint)
    return made  # type: ignore[no-any-return]
