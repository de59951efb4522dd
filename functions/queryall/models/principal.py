"""Who is calling: the principal every API route acts for, however it authenticated."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class CredentialKind(StrEnum):
    BOOTSTRAP_KEY = "bootstrap_key"  # a key in the SSM parameter(s): how the first managed key is made
    MANAGED_KEY = "managed_key"  # a key made through POST /query-all/keys (DynamoDB)
    BEARER_TOKEN = "token"  # noqa: S105 (a kind, not a secret)  a Bearer JWT, validated by the HTTP API's JWT authorizer (or the local gateway)


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Owns the jobs it submits: the managed key's id, "token:<sub>" for a token (never a bare `sub`, so a
    # token cannot name itself after a key), or "key:<fingerprint>" for a bootstrap key (as before).
    owner: str
    kind: CredentialKind
    # The tenants it may query; None is every tenant ("*").
    buckets: frozenset[str] | None = None
    # Admin: catalog refresh, ?all=true on the job list, and the keys routes.
    admin: bool = False
    # Bootstrap keys may manage keys without being admin otherwise (the first key has to come from somewhere).
    manages_keys: bool = False
    # Per-principal quota overrides (None: the deployment's defaults).
    max_running: int | None = None
    rate_per_minute: int | None = None

    @property
    def may_manage_keys(self) -> bool:
        return self.admin or self.manages_keys
