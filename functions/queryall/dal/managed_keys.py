"""Managed API keys in DynamoDB, one item per key, keyed by the SHA-256 of its secret.

Authenticating a request is one GetItem by that hash, cached per warm function for at most
`cache_seconds` (≤ 60): a revoked key stops working within a minute everywhere, and a busy function
reads each key about once a minute. The cache holds misses too (briefly), so a flood of wrong keys
costs no more reads than the right ones. `last_used_at` is written when the cache is refreshed, so it is
accurate to about a minute without a write per request.
"""

from __future__ import annotations

import time
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.aws import client
from queryall.models.keys import ManagedKey
from queryall.observability import logger

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
ID_INDEX = "key_id"
MISS_CACHE_SECONDS = 5.0

_cache: dict[str, tuple[float, ManagedKey | None]] = {}


def _to_key(item: dict[str, Any]) -> ManagedKey:
    return ManagedKey.model_validate({k: _deserializer.deserialize(v) for k, v in item.items()})


class ManagedKeyStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def find(self, key_hash: str, *, cache_seconds: float, now_iso: str) -> ManagedKey | None:
        """The key with this hash (revoked or not), or None: from the cache when fresh enough."""
        now = time.monotonic()
        cached = _cache.get(key_hash)
        if cached is not None:
            age_limit = cache_seconds if cached[1] is not None else min(cache_seconds, MISS_CACHE_SECONDS)
            if now - cached[0] < age_limit:
                return cached[1]
        response = client("dynamodb").get_item(TableName=self.table_name, Key={"key_hash": {"S": key_hash}},
                                               ConsistentRead=True)
        key = _to_key(response["Item"]) if "Item" in response else None
        _cache[key_hash] = (now, key)
        if key is not None and not key.revoked:
            self._touch(key_hash, now_iso)
        return key

    def _touch(self, key_hash: str, now_iso: str) -> None:
        try:
            client("dynamodb").update_item(
                TableName=self.table_name, Key={"key_hash": {"S": key_hash}},
                UpdateExpression="SET last_used_at = :now", ConditionExpression="attribute_exists(key_hash)",
                ExpressionAttributeValues={":now": {"S": now_iso}})
        except (ClientError, BotoCoreError):
            # Bookkeeping only: a request is never refused because its last-used time was not written.
            logger.warning("could not record the key's last use", exc_info=True)

    def create(self, key: ManagedKey) -> None:
        values = key.model_dump(mode="json", exclude_none=True)
        client("dynamodb").put_item(TableName=self.table_name,
                                    Item={k: _serializer.serialize(v) for k, v in values.items()},
                                    ConditionExpression="attribute_not_exists(key_hash)")

    def list_all(self) -> list[ManagedKey]:
        keys: list[ManagedKey] = []
        paginator = client("dynamodb").get_paginator("scan")
        for page in paginator.paginate(TableName=self.table_name):
            keys.extend(_to_key(item) for item in page.get("Items", []))
        return sorted(keys, key=lambda key: (key.created_at, key.key_id))

    def revoke(self, key_id: str, now_iso: str) -> ManagedKey | None:
        """Mark the key revoked (idempotent); None when no key has this id."""
        found = client("dynamodb").query(
            TableName=self.table_name, IndexName=ID_INDEX, KeyConditionExpression="key_id = :id",
            ExpressionAttributeValues={":id": {"S": key_id}})
        items = found.get("Items", [])
        if not items:
            return None
        key_hash = items[0]["key_hash"]["S"]
        response = client("dynamodb").update_item(
            TableName=self.table_name, Key={"key_hash": {"S": key_hash}},
            UpdateExpression="SET revoked = :true, revoked_at = if_not_exists(revoked_at, :now)",
            ConditionExpression="attribute_exists(key_hash)",
            ExpressionAttributeValues={":true": {"BOOL": True}, ":now": {"S": now_iso}},
            ReturnValues="ALL_NEW")
        # This container forgets it at once; others within their cache time.
        _cache.pop(key_hash, None)
        return _to_key(response["Attributes"])


def clear_cache() -> None:
    _cache.clear()
