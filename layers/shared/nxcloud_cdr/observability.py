"""The Powertools logger and metrics every function shares.

Tracer is left out on purpose: it imports aws-xray-sdk, about 200 ms of cold start
on every new container, for traces of a two-call function.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="nxcloud-cdr")
metrics = Metrics(namespace="NxcloudCdr", service="nxcloud-cdr")
