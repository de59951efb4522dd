"""Shared boto3 clients, created on first use and reused across warm invocations."""

from __future__ import annotations

import functools
import os
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


# Tenant downloads (S3TenantDatabases.point_alias): DuckDB checks its own blocks' checksums as it reads.
# Three attempts: a download that keeps failing falls back to DuckDB attaching the tenant over S3.
_DOWNLOAD_CONFIG = _S3_CONFIG.merge(Config(response_checksum_validation="when_required",
                                           retries={"mode": "standard", "max_attempts": 3}))


@functools.cache
def _download_client(pid: int) -> Any:
    return boto3.session.Session().client("s3", config=_DOWNLOAD_CONFIG)


def download_client() -> Any:
    """An S3 client of this process's own, for tenant downloads: a query worker is forked from the
    batch's process, whose clients' pooled connections it must not share."""
    return _download_client(os.getpid())


def reset_clients() -> None:
    client.cache_clear()
    _download_client.cache_clear()


def renew_session() -> None:
    """New clients on a new default session: a restored SnapStart snapshot holds the old ones' open
    connections and the credentials the session resolved before the snapshot (see queryall.snapstart)."""
    reset_clients()
    boto3.DEFAULT_SESSION = None  # boto3.client() sets up a fresh one, which resolves credentials anew
