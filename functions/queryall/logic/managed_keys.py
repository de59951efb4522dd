"""Creating, listing and revoking managed API keys (admin routes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from queryall.dal.managed_keys import ManagedKeyStore
from queryall.errors import NotFound
from queryall.logic.auth import hash_secret, new_secret
from queryall.models.keys import ALL_BUCKETS, CreatedKey, CreateKeyRequest, KeyView, ManagedKey


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def create_key(store: ManagedKeyStore, request: CreateKeyRequest, now: float) -> CreatedKey:
    """A new key; its secret is in this answer only (the store keeps its hash)."""
    secret = new_secret()
    buckets = ALL_BUCKETS if request.buckets == ALL_BUCKETS else sorted(set(request.buckets))
    key = ManagedKey(key_id="key-" + uuid.uuid4().hex[:20], key_hash=hash_secret(secret), name=request.name,
                     owner_label=request.owner_label, buckets=buckets, admin=request.admin,
                     max_running=request.max_running, rate_per_minute=request.rate_per_minute,
                     created_at=iso_time(now))
    store.create(key)
    return CreatedKey(**KeyView.of(key).model_dump(), secret=secret)


def list_keys(store: ManagedKeyStore) -> list[KeyView]:
    return [KeyView.of(key) for key in store.list_all()]


def revoke_key(store: ManagedKeyStore, key_id: str, now: float) -> KeyView:
    key = store.revoke(key_id, iso_time(now)) if len(key_id) <= 100 else None
    if key is None:
        raise NotFound(f"Key not found: {key_id}")
    return KeyView.of(key)
