"""Planning a job: which tenant databases to query, cut into batches for the Map."""

from __future__ import annotations

from queryall.dal.tenant_databases import FolderTenantDatabases, database_suffix
from queryall.models.workflow import Batch, ExecutionInput, Plan


def plan_targets(
    execution: ExecutionInput, tenants: FolderTenantDatabases, batch_size: int, max_concurrency: int
) -> Plan:
    missing: dict[str, str] = {}
    if execution.buckets is None:
        targets = tenants.list_buckets()
    else:
        targets = []
        seen: set[str] = set()
        for bucket in execution.buckets:
            # Two spellings of one tenant (a-b, a_b) name the same database: query it once.
            if database_suffix(bucket) in seen:
                continue
            seen.add(database_suffix(bucket))
            if tenants.exists(bucket):
                targets.append(bucket)
            else:
                missing[bucket] = f"No database for bucket '{bucket}' ({tenants.database_name(bucket)})"
    batches = [
        Batch(batch_index=index, buckets=targets[start: start + batch_size])
        for index, start in enumerate(range(0, len(targets), batch_size))
    ]
    return Plan(
        batches=batches,
        max_concurrency=max_concurrency,
        databases_total=len(targets) + len(missing),
        missing=missing,
    )
