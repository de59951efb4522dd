"""Accepted API keys, kept in SSM Parameter Store (comma-separated) and cached per warm function.

One GetParameter through the shared client, cached here: Powertools' parameters utility would do the
same but imports its DynamoDB provider (and boto3.dynamodb.conditions), ~30 ms of every API cold start.
"""

from __future__ import annotations

import time

from queryall.dal.aws import client

_cache: dict[str, tuple[float, list[str]]] = {}


def accepted_api_keys(parameter_name: str, max_age: int) -> list[str]:
    now = time.monotonic()
    cached = _cache.get(parameter_name)
    if cached is not None and now - cached[0] < max_age:
        return cached[1]
    value = client("ssm").get_parameter(Name=parameter_name, WithDecryption=True)["Parameter"]["Value"]
    keys = [key.strip() for key in str(value).split(",") if key.strip()]
    _cache[parameter_name] = (now, keys)
    return keys


def clear_cache() -> None:
    _cache.clear()
