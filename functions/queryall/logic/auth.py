"""Who is calling: bootstrap keys (SSM), managed keys (DynamoDB, hashed) and Bearer token claims, each
turned into one Principal. A bootstrap key's owner is a fingerprint of that key."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets

from queryall.errors import Forbidden, Unauthorized
from queryall.models.keys import ALL_BUCKETS, ManagedKey
from queryall.models.principal import CredentialKind, Principal

BUCKET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def caller_for_api_key(presented: str | None, accepted: list[str]) -> str:
    """Returns the caller id for a valid key, else raises Unauthorized (same message either way)."""
    if not presented:
        raise Unauthorized()
    matched = False
    # Compare with every key, in constant time, so timing tells nothing about which part matched.
    for key in accepted:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    if not matched:
        raise Unauthorized()
    return "key:" + hashlib.sha256(presented.encode()).hexdigest()[:16]


def require_admin(presented: str | None, admin_keys: list[str]) -> None:
    """Admin routes: the (already authenticated) key must also be an admin key, else 403."""
    matched = False
    for key in admin_keys:
        matched |= bool(presented) and hmac.compare_digest(str(presented).encode(), key.encode())
    if not matched:
        raise Forbidden("This route needs an admin API key")


# ---------------------------------------------------------------------------------------------------
# Managed keys: the secret is shown once; only its hash is stored.

# 32 random bytes: 256 bits of entropy. With that much entropy a plain SHA-256 is enough: nobody can
# guess a secret that hashes to a stored value, so a slow password hash (bcrypt, scrypt, argon2: there to
# protect low-entropy human passwords) would add only latency. And an unsalted, deterministic hash lets
# the key be found with one GetItem by its hash (a salt would need the id first, or a scan).
SECRET_BYTES = 32
MANAGED_KEY_PREFIX = "qak_"


def new_secret() -> str:
    """A new managed key's secret: recognisable by its prefix, 256 random bits after it."""
    return MANAGED_KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_managed_secret(presented: str) -> bool:
    # 43 characters of base64url after the prefix; anything else is never looked up.
    return presented.startswith(MANAGED_KEY_PREFIX) and len(presented) == len(MANAGED_KEY_PREFIX) + 43


def principal_for_managed_key(key: ManagedKey | None) -> Principal:
    if key is None or key.revoked:
        raise Unauthorized()
    return Principal(owner=key.key_id, kind=CredentialKind.MANAGED_KEY,
                     buckets=None if key.buckets == ALL_BUCKETS else frozenset(key.buckets), admin=key.admin,
                     max_running=key.max_running, rate_per_minute=key.rate_per_minute)


def principal_for_bootstrap_key(presented: str | None, accepted: list[str], admin_keys: list[str]) -> Principal:
    """An SSM-parameter key: every tenant, may manage keys; admin when it is also an admin key."""
    owner = caller_for_api_key(presented, accepted)
    admin = any([hmac.compare_digest(str(presented).encode(), key.encode()) for key in admin_keys])
    return Principal(owner=owner, kind=CredentialKind.BOOTSTRAP_KEY, admin=admin, manages_keys=True)


# ---------------------------------------------------------------------------------------------------
# Bearer tokens: claims already validated (HTTP API JWT authorizer on AWS, the gateway locally).

BUCKETS_CLAIM = "queryall_buckets"
ADMIN_CLAIM = "queryall_admin"


def parse_buckets_claim(value: object) -> frozenset[str] | None:
    """`queryall_buckets`: a JSON list, a JSON text of a list, or a space-separated string; "*" is every
    tenant (None). Missing or unusable: no tenant at all (an empty set), never every tenant."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            # The HTTP API authorizer hands list claims to the function as the list's JSON-ish text.
            try:
                value = json.loads(text)
            except ValueError:
                value = text.strip("[]").replace(",", " ").split()
        else:
            value = text.split()
    if not isinstance(value, list):
        return frozenset()
    names = [str(item).strip() for item in value if isinstance(item, str) and str(item).strip()]
    if ALL_BUCKETS in names:
        return None
    return frozenset(name for name in names if BUCKET_ID.fullmatch(name))


def parse_admin_claim(value: object) -> bool:
    # Only an explicit true: a string "false" (how the authorizer passes booleans) must not count.
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def principal_for_claims(claims: dict) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized()
    return Principal(owner="token:" + subject, kind=CredentialKind.BEARER_TOKEN,
                     buckets=parse_buckets_claim(claims.get(BUCKETS_CLAIM)),
                     admin=parse_admin_claim(claims.get(ADMIN_CLAIM)))


def require_key_manager(principal: Principal) -> None:
    if not principal.may_manage_keys:
        raise Forbidden("This route needs an admin API key")


def require_admin_principal(principal: Principal) -> None:
    if not principal.admin:
        raise Forbidden("This route needs an admin API key")
