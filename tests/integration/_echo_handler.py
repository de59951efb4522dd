"""Tiny Lambda handlers for the local-stack integration tests (imported by the in-process runtime)."""

from __future__ import annotations

import json
import os
import threading
import time
from decimal import Decimal
from typing import Any

import boto3

# Filled by `record`, which tests invoke with InvocationType=Event (it runs in the background).
RECORDED: list[Any] = []
RECORDED_EVENT = threading.Event()


class EchoFailure(Exception):
    """Raised on purpose; Step Functions' Catch must see Error == "EchoFailure"."""


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {
        "echo": event,
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "has_time_left": 0 < context.get_remaining_time_in_millis() <= 10_000,
        "exact": Decimal("0.10"),  # Lambda writes Decimals as exact numbers
    }


def fail(event: Any, context: Any) -> Any:
    raise EchoFailure(f"failed on purpose: {json.dumps(event, sort_keys=True)}")


def slow(event: Any, context: Any) -> Any:
    time.sleep(float(event.get("seconds", 0.2)))
    return {"slept": event.get("seconds", 0.2), "item": event.get("item")}


def record(event: Any, context: Any) -> None:
    RECORDED.append(event)
    RECORDED_EVENT.set()


def call_other(event: Any, context: Any) -> Any:
    """Invoke another function through boto3, as the submit handler invokes the SQL guard."""
    response = boto3.client("lambda").invoke(FunctionName=event["target"], Payload=json.dumps(event["payload"]))
    return {
        "status": response["StatusCode"],
        "function_error": response.get("FunctionError"),
        "payload": json.loads(response["Payload"].read()),
    }


def environment(event: Any, context: Any) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in event["names"]}


def http(event: Any, context: Any) -> dict[str, Any]:
    """An HTTP API handler: answers with the parts of the v2 event the tests look at."""
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-route": event["routeKey"]},
        "body": json.dumps({"path": event.get("pathParameters"), "query": event.get("queryStringParameters")}),
    }
