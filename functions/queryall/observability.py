"""The one place Powertools logging, tracing and metrics are configured.

`tracer` is created on first access (PEP 562): building a Powertools Tracer imports the X-Ray SDK and
patches boto3, requests and httpx (~90 ms). The workflow functions use it (per-call subsegments for S3,
DynamoDB, Lambda); the API functions never touch it, so their cold start does not pay for it, and their
traces are the segments Lambda's Active tracing records itself (trace id in every log line too).
"""

import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
# Every handler flushes metrics (queryall.handlers.function); an invocation that records none (a poll,
# a rejected request) is normal, not worth Powertools' warning.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def __getattr__(name: str) -> Any:
    if name == "tracer":
        from aws_lambda_powertools import Tracer

        globals()["tracer"] = tracer = Tracer()
        return tracer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
