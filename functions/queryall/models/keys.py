"""Managed API keys: the stored record and the bodies of the /query-all/keys routes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from queryall.models.api import BucketId

ALL_BUCKETS = "*"
MAX_SCOPE_BUCKETS = 1000


class ManagedKey(BaseModel):
    """One key as stored (keyed by the SHA-256 of its secret; the secret itself is never stored)."""

    model_config = ConfigDict(extra="ignore")

    key_id: str
    key_hash: str
    name: str
    owner_label: str | None = None
    buckets: list[str] | Literal["*"]
    admin: bool = False
    max_running: int | None = None
    rate_per_minute: int | None = None
    created_at: str
    last_used_at: str | None = None
    revoked: bool = False
    revoked_at: str | None = None


class CreateKeyRequest(BaseModel):
    """POST /query-all/keys body."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="What the key is for, shown in the key list.")
    owner_label: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="Who holds the key (a team, a service), for the operator.")
    # At most 1,000: the scope is recorded on each job and carried in its workflow input (256 KB).
    buckets: Annotated[list[BucketId], Field(min_length=1, max_length=MAX_SCOPE_BUCKETS)] | Literal["*"] = Field(
        description='The tenants the key may query (at most 1,000), or "*" for every tenant.')
    admin: bool = Field(False, description="May manage keys, refresh the catalog and list every caller's jobs.")
    max_running: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        None, description="Jobs this key may have running at once (default: the deployment's MaxRunningJobs).")
    rate_per_minute: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="Submits per minute (default: the deployment's SubmitsPerMinute).")


class KeyView(BaseModel):
    """A key as listed: everything but its hash."""

    id: str
    name: str
    owner_label: str | None = None
    buckets: list[str] | Literal["*"]
    admin: bool
    max_running: int | None = None
    rate_per_minute: int | None = None
    created_at: str
    last_used_at: str | None = None
    revoked: bool
    revoked_at: str | None = None

    @classmethod
    def of(cls, key: ManagedKey) -> KeyView:
        return cls(id=key.key_id, **key.model_dump(exclude={"key_id", "key_hash"}))


class CreatedKey(KeyView):
    secret: str = Field(description="The key to send as X-API-Key. Shown only in this response.")


class CreatedKeyResponse(BaseModel):
    data: CreatedKey


class KeyListResponse(BaseModel):
    data: list[KeyView]


class KeyResponse(BaseModel):
    data: KeyView
