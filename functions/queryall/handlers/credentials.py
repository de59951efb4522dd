"""Who sent an API request: the one place that reads credentials out of the HTTP API event.

Every route accepts either credential. A Bearer token is validated before the function runs (on AWS by
the HTTP API's JWT authorizer, locally by the gateway, the same checks), and the function reads the
claims the authorizer put in `requestContext.authorizer.jwt.claims`; the function never trusts an
`Authorization` header by itself. Without claims, the `X-API-Key` header is checked: a managed key
(`qak_…`) by the hash of its secret in the keys table, any other by the bootstrap keys in SSM.
"""

from __future__ import annotations

import time

from queryall.dal.api_keys import accepted_api_keys
from queryall.dal.managed_keys import ManagedKeyStore
from queryall.errors import Unauthorized
from queryall.logic.auth import (
    hash_secret,
    is_managed_secret,
    principal_for_bootstrap_key,
    principal_for_claims,
    principal_for_managed_key,
)
from queryall.logic.managed_keys import iso_time
from queryall.models.principal import Principal
from queryall.settings import get_settings


def token_claims(event: dict) -> dict | None:
    """The validated token's claims, when a JWT authorizer passed the request."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims")
    return claims if isinstance(claims, dict) else None


def authenticate(event: dict) -> Principal:
    claims = token_claims(event)
    if claims is not None:
        return principal_for_claims(claims)
    presented = (event.get("headers") or {}).get("x-api-key")
    if not presented:
        raise Unauthorized()
    settings = get_settings()
    if is_managed_secret(presented):
        if not settings.api_keys_table:
            raise Unauthorized()
        now = time.time()
        key = ManagedKeyStore(settings.api_keys_table).find(
            hash_secret(presented), cache_seconds=settings.managed_key_cache_seconds, now_iso=iso_time(now))
        return principal_for_managed_key(key)
    accepted = accepted_api_keys(settings.require("api_keys_parameter"), settings.api_keys_cache_seconds)
    admin_keys: list[str] = []
    if settings.admin_api_keys_parameter:
        admin_keys = accepted_api_keys(settings.admin_api_keys_parameter, settings.api_keys_cache_seconds)
    return principal_for_bootstrap_key(presented, accepted, admin_keys)
