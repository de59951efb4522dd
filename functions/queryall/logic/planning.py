"""Planning a job: which tenant databases to query, cut into batches for the Map."""

from __future__ import annotations

from dataclasses import dataclass

from queryall.dal.job_documents import REQUESTED_BUCKETS, JobDocuments
from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.map_items import MapItemStore
from queryall.dal.tenant_databases import TenantDatabase, TenantDatabases, database_suffix
from queryall.logic.catalog import catalog_entries
from queryall.logic.distribution import distribute
from queryall.logic.progress import record_plan
from queryall.logic.scope import denied_message, in_scope, scope_suffixes
from queryall.models.catalog import TenantCatalogEntry
from queryall.models.execution import ExecutionInput
from queryall.models.workflow import Batch, Plan
from queryall.observability import logger


def skip_message(table: str) -> str:
    return f"Table '{table}' not found"


def requested_buckets(execution: ExecutionInput, documents: JobDocuments | None) -> list[str] | None:
    """The buckets the request named (None: every tenant). A long list is not in the workflow input:
    submit kept it in S3 (see JobRequest)."""
    if not execution.buckets_stored:
        return execution.buckets
    if documents is None:
        raise ValueError("the requested buckets are stored: the job documents store is required")
    return documents.get(execution.job_id, REQUESTED_BUCKETS)


def plan_targets(
    execution: ExecutionInput,
    tenants: TenantDatabases,
    batch_size: int,
    max_concurrency: int,
    catalog: dict[str, TenantCatalogEntry] | None = None,
    documents: JobDocuments | None = None,
) -> Plan:
    """Targets are listed from the backend itself, so a new tenant is queried even before the catalog
    knows it. With `table`, a tenant the catalog describes at its current version and without that
    table is skipped here, never opened; any other tenant is checked by QueryBatch when it runs.

    The submitter's scope (recorded on the job) is applied again here, so no job reaches a tenant its
    submitter could not name: tenants outside it are not listed at all (nor counted, nor reported)."""
    requested = requested_buckets(execution, documents)
    suffixes = scope_suffixes(execution.scope)
    listed = {database_suffix(t.bucket): t for t in tenants.list_tenants() if in_scope(t.bucket, suffixes)}
    missing: dict[str, str] = {}
    found: list[tuple[str, TenantDatabase]] = []
    if requested is None:
        found = [(t.bucket, t) for t in listed.values()]
    else:
        seen: set[str] = set()
        for bucket in requested:
            # Two spellings of one tenant (a-b, a_b) name the same database: query it once.
            suffix = database_suffix(bucket)
            if suffix in seen:
                continue
            seen.add(suffix)
            if not in_scope(bucket, suffixes):
                missing[bucket] = denied_message(bucket)  # refused at submit; never reached if it got here
            elif suffix in listed:
                found.append((bucket, listed[suffix]))
            else:
                missing[bucket] = f"No database for bucket '{bucket}' ({tenants.database_name(bucket)})"

    skipped: dict[str, str] = {}
    targets: list[str] = []
    for bucket, tenant in found:
        entry = (catalog or {}).get(tenant.bucket)
        if execution.table is not None and entry is not None and entry.describes(tenant.version) \
                and not entry.has_table(execution.table):
            skipped[bucket] = skip_message(execution.table)
        else:
            targets.append(bucket)
    batches = [
        Batch(batch_index=index, buckets=targets[start: start + batch_size])
        for index, start in enumerate(range(0, len(targets), batch_size))
    ]
    return Plan(
        batches=batches,
        max_concurrency=max_concurrency,
        databases_total=len(targets) + len(missing) + len(skipped),
        missing=missing,
        skipped=skipped,
    )


@dataclass(frozen=True)
class MapLimits:
    """How a plan may be cut and run (the function's settings)."""

    batch_size: int
    max_concurrency: int
    distributed_threshold: int
    distributed_max_concurrency: int


def plan_job(execution: ExecutionInput, tenants: TenantDatabases, catalog_table: str, items: MapItemStore,
             counters: JobProgressCounters, limits: MapLimits, documents: JobDocuments) -> Plan:
    """The PlanTargets step: the job's targets (the catalog is read only to skip tenants without
    `table`), cut for the Map that will run them, and the job's progress told how many there are."""
    plan = plan_targets(execution, tenants, limits.batch_size, limits.max_concurrency,
                        catalog=catalog_entries(catalog_table) if execution.table else None, documents=documents)
    plan = distribute(plan, execution.job_id, threshold=limits.distributed_threshold,
                      max_batch_size=limits.batch_size, max_concurrency=limits.max_concurrency,
                      distributed_max_concurrency=limits.distributed_max_concurrency, items=items,
                      documents=documents)
    logger.info("planned", extra={"databases": plan.databases_total, "batches": len(plan.batches),
                                  "batch_size": plan.batch_size, "mode": plan.mode})
    record_plan(counters, execution.job_id, plan.databases_total, plan.missing_count)
    return plan
