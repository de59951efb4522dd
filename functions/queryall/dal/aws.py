"""Shared boto3 clients, created on first use and reused across warm invocations."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling, which a fan-out over many tenants can hit.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
# botocore presigns S3 URLs with SigV2 unless told otherwise, and buckets created since mid-2020 reject it.
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))


@functools.cache
def client(service: str) -> Any:
    return boto3.client(service, config=_S3_CONFIG if service == "s3" else _CONFIG)


def reset_clients() -> None:
    client.cache_clear()
