"""Bucket scope: which tenants a caller may query, compared the way tenants are named.

A scope is a set of bucket ids, or None for every tenant. Two spellings of one tenant (`a-b`, `a_b`) name
the same database, so membership is decided on the database suffix: a scope of `a-b` admits `a_b`.
"""

from __future__ import annotations

from collections.abc import Iterable

from queryall.errors import Forbidden


def _suffix(bucket: str) -> str:
    # As queryall.dal.tenant_databases.database_suffix (not imported: that module is the workflow's).
    return bucket.replace("-", "_")


def scope_suffixes(scope: Iterable[str] | None) -> frozenset[str] | None:
    return None if scope is None else frozenset(_suffix(bucket) for bucket in scope)


def in_scope(bucket: str, suffixes: frozenset[str] | None) -> bool:
    return suffixes is None or _suffix(bucket) in suffixes


def denied_message(bucket: str) -> str:
    return f"Access denied to bucket '{bucket}'"


def require_buckets_in_scope(buckets: Iterable[str] | None, scope: Iterable[str] | None) -> None:
    """403 for the first requested bucket outside the scope, in request order."""
    suffixes = scope_suffixes(scope)
    for bucket in buckets or ():
        if not in_scope(bucket, suffixes):
            raise Forbidden(denied_message(bucket))


def recorded_scope(scope: Iterable[str] | None) -> list[str] | None:
    """The scope as the job records it (sorted, so equal scopes are equal text)."""
    return None if scope is None else sorted(set(scope))
