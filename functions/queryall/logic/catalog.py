"""Keeping the table catalog in step with the tenant databases, and reading it back.

Submit's check of `table` against the catalog is `logic.submission.require_known_table`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.catalog import CatalogStore
from queryall.dal.tenant_databases import BUCKET_ID, TenantDatabases
from queryall.logic.cursors import CursorCodec
from queryall.logic.scope import in_scope, scope_suffixes
from queryall.models.catalog import (
    DatabasesMeta,
    DatabasesResponse,
    RefreshResult,
    TenantCatalogEntry,
)
from queryall.models.catalog_summary import CatalogSummary
from queryall.observability import logger

# Tenants described and written at a time (a few seconds each over S3, DESCRIBE_CONCURRENCY at once).
REFRESH_CHUNK = 400
# Time kept back for the removals, the summary and the function's own end.
REFRESH_MARGIN_SECONDS = 20.0


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def refresh_catalog(tenants: TenantDatabases, store: CatalogStore, now: float,
                    remaining_seconds: Callable[[], float] | None = None) -> RefreshResult:
    """Read the tables of every tenant that is new or changed since the last refresh, forget tenants
    that are gone, and rewrite the summary. Unchanged tenants (same version) are not opened; tenants
    whose database could not be read are read again next time.

    Tenants are read and written REFRESH_CHUNK at a time, and no chunk is started when
    `remaining_seconds()` (the function's time left) could not hold two more of the longest so far:
    a first refresh of thousands of tenants over the network keeps what it read, and the next refresh
    goes on from there (those tenants are unchanged then), where one write at the end lost it all."""
    refreshed_at = _iso(now)
    listed = tenants.list_tenants()
    known = store.entries()
    changed = [t for t in listed if not (t.bucket in known and known[t.bucket].describes(t.version))]
    written: list[TenantCatalogEntry] = []
    longest = 0.0
    for start in range(0, len(changed), REFRESH_CHUNK):
        if remaining_seconds is not None and remaining_seconds() < 2 * longest + REFRESH_MARGIN_SECONDS:
            break
        chunk = changed[start: start + REFRESH_CHUNK]
        started = time.monotonic()
        described = tenants.describe(t.bucket for t in chunk)
        entries = [
            TenantCatalogEntry(bucket=t.bucket, database=tenants.database_name(t.bucket), version=t.version,
                               tables=described[t.bucket].tables, error=described[t.bucket].error,
                               refreshed_at=refreshed_at)
            for t in chunk
        ]
        store.write(entries, [])
        written += entries
        longest = max(longest, time.monotonic() - started)
    listed_buckets = {t.bucket for t in listed}
    removed = sorted(set(known) - listed_buckets)
    store.write([], removed)

    current = {b: e for b, e in known.items() if b in listed_buckets} | {e.bucket: e for e in written}
    names = {t.name for e in current.values() for t in e.tables}
    store.put_summary(CatalogSummary(tables=sorted(names), tenants=len(current), refreshed_at=refreshed_at))
    return RefreshResult(tenants=len(listed), read=len(written), unchanged=len(listed) - len(changed),
                         removed=len(removed), errors=sum(e.error is not None for e in written),
                         pending=len(changed) - len(written), refreshed_at=refreshed_at)


def catalog_entries(table_name: str) -> dict[str, TenantCatalogEntry]:
    """The catalog's tenants for planning; an unreadable catalog only means every tenant is opened."""
    try:
        return CatalogStore(table_name).entries()
    except (ClientError, BotoCoreError):
        logger.warning("catalog unavailable; tenants will be checked when queried", exc_info=True)
        return {}


_CURSORS = CursorCodec("databases", [BUCKET_ID])


def databases_page(store: CatalogStore, limit: int, cursor: str | None,
                   scope: frozenset[str] | None = None) -> DatabasesResponse:
    """One page of tenants with their tables, in bucket order. A scoped caller sees only the tenants in
    its scope, and `tables` names only their tables."""
    after = _CURSORS.decode(cursor)[0] if cursor else None
    if scope is not None:
        return _scoped_page(store, limit, after, scope)
    entries, last = store.page(limit, after)
    summary = store.summary()
    return DatabasesResponse(data=entries, meta=DatabasesMeta(
        count=len(entries), next_cursor=_CURSORS.encode([last]) if last else None,
        refreshed_at=summary.refreshed_at if summary else None, tables=summary.tables if summary else [],
    ))


def _scoped_page(store: CatalogStore, limit: int, after: str | None, scope: frozenset[str]) -> DatabasesResponse:
    suffixes = scope_suffixes(scope)
    visible = [entry for bucket, entry in sorted(store.entries().items()) if in_scope(bucket, suffixes)]
    following = [entry for entry in visible if after is None or entry.bucket > after]
    page = following[:limit]
    summary = store.summary()
    tables = sorted({table.name for entry in visible for table in entry.tables})
    return DatabasesResponse(data=page, meta=DatabasesMeta(
        count=len(page), next_cursor=_CURSORS.encode([page[-1].bucket]) if len(following) > limit else None,
        refreshed_at=summary.refreshed_at if summary else None, tables=tables,
    ))
