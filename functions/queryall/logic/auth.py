"""Who is calling. Minimal for now: a shared API key; the owner is a fingerprint of that key."""

from __future__ import annotations

import hashlib
import hmac

from queryall.errors import Forbidden, Unauthorized


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
