"""Clients built from botocore: the endpoint sam local invoke points them at, and only then."""

from __future__ import annotations

from nxcloud_cdr import aws_clients


def test_dynamodb_endpoint_from_the_environment_when_set(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", "http://host.docker.internal:8000")
    assert aws_clients.dynamodb().meta.endpoint_url == "http://host.docker.internal:8000"


def test_an_empty_endpoint_is_dynamodb_itself(monkeypatch):
    # Every deployed stack declares the variable empty (template.yaml).
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", "")
    assert aws_clients.dynamodb().meta.endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"
