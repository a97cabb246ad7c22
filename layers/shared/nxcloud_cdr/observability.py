"""The Powertools logger and metrics every function shares.

Tracer is left out on purpose: it imports aws-xray-sdk, about 200 ms of cold start
on every new container, for traces of a two-call function.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

# At DEBUG botocore logs every response body, and Secrets Manager's holds the push
# token or NXCLOUD's API secret: kept in CloudWatch for the whole log retention. These
# loggers have no level of their own, so they follow the root one, which Lambda sets to
# LogLevel before importing the handler (Powertools leaves the root alone). Held at INFO,
# or at the root's level when that is higher: DEBUG stays for this project's own lines,
# and the SDK gets no chattier than before.
SDK_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "requests")


def hold_sdk_loggers() -> None:
    floor = max(logging.INFO, logging.getLogger().getEffectiveLevel())
    for name in SDK_LOGGERS:
        sdk = logging.getLogger(name)
        if sdk.level < floor:
            sdk.setLevel(floor)


hold_sdk_loggers()

logger = Logger(service="nxcloud-cdr")
# Every handler's context decorator. log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT
# says: a push event holds the token in its path (and a body its phone numbers), a stream
# record the items' numbers; Powertools would log the whole event at INFO.
lambda_context = logger.inject_lambda_context(clear_state=True, log_event=False)
# No service dimension: one function per push type already, and PushType says which
# (every byte of the metrics line is in every push's log bill).
metrics = Metrics(namespace="NxcloudCdr")


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


def count_under(dimension: str, value: str, name: str, amount: float = 1) -> None:
    """``count`` with the function's one dimension (``Recordings=archive``,
    ``Events=publish``), added with the first metric: an invocation that counts
    nothing leaves none behind (Powertools keeps dimensions until metrics are published)."""
    if dimension not in metrics.dimension_set:
        metrics.add_dimension(name=dimension, value=value)
    count(name, amount)
