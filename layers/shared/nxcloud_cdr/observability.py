"""The Powertools logger and metrics every function shares.

Tracer is left out on purpose: it imports aws-xray-sdk, about 200 ms of cold start
on every new container, for traces of a two-call function.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="nxcloud-cdr")
# No service dimension: one function per push type already, and PushType says which
# (every byte of the metrics line is in every push's log bill).
metrics = Metrics(namespace="NxcloudCdr")


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)
