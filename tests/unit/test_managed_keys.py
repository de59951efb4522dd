"""The managed key store: one read by hash, trusted for at most the cache time (revocation within it)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from queryall.dal import managed_keys
from queryall.dal.managed_keys import ManagedKeyStore
from queryall.logic.auth import hash_secret, principal_for_managed_key
from queryall.models.keys import CreateKeyRequest
from queryall.settings import reset_caches


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        reset_caches()
        boto3.client("dynamodb").create_table(
            TableName="keys", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "key_hash", "AttributeType": "S"},
                                  {"AttributeName": "key_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "key_hash", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{"IndexName": "key_id",
                                     "KeySchema": [{"AttributeName": "key_id", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "KEYS_ONLY"}}])
        yield ManagedKeyStore("keys")
        reset_caches()


def test_revocation_elsewhere_takes_effect_within_the_cache_time(store: ManagedKeyStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from queryall.logic.managed_keys import create_key

    clock = [1000.0]
    monkeypatch.setattr(managed_keys.time, "monotonic", lambda: clock[0])
    created = create_key(store, CreateKeyRequest(name="n", buckets=["acme"]), 0.0)
    stored = boto3.client("dynamodb").scan(TableName="keys")["Items"]
    assert created.secret not in str(stored) and stored[0]["key_hash"]["S"] == hash_secret(created.secret)

    found = store.find(hash_secret(created.secret), cache_seconds=60, now_iso="t")
    assert principal_for_managed_key(found).buckets == {"acme"}
    # Revoked by another container: this one still trusts its copy for under a minute, then reads again.
    managed_keys.ManagedKeyStore("keys").revoke(created.id, "t")
    managed_keys._cache[hash_secret(created.secret)] = (clock[0], found)  # as if this container had it
    clock[0] += 59
    assert store.find(hash_secret(created.secret), cache_seconds=60, now_iso="t").revoked is False
    clock[0] += 1.5
    assert store.find(hash_secret(created.secret), cache_seconds=60, now_iso="t").revoked is True
    with pytest.raises(Exception, match="Authentication required"):
        principal_for_managed_key(store.find(hash_secret(created.secret), cache_seconds=60, now_iso="t"))
