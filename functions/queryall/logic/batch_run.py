"""One batch of the query step: run the query on its tenants, write their rows and outcomes to S3."""

from __future__ import annotations

from dataclasses import dataclass

from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.partial_results import PartialResultStore, partial_key
from queryall.dal.tenant_databases import TenantDatabases
from queryall.logic.combined_result import ipc_stream
from queryall.logic.progress import BatchProgress, JobNoLongerProcessing
from queryall.logic.query_workers import run_batch
from queryall.models.workflow import BatchInput, BatchResult, BatchSummary, TenantOutcome
from queryall.observability import logger, metrics


@dataclass(frozen=True)
class QueryLimits:
    """What one tenant's query may use (the function's settings)."""

    timeout_seconds: float
    memory_limit_mb: int
    threads: int
    # Tenants of a batch queried at once when opening them waits on the network (S3, MotherDuck);
    # folder tenants are CPU work and run one at a time (docs/performance.md).
    concurrency: int = 1


def _log_tenant(outcome: TenantOutcome) -> None:
    # Every outcome is in the batch's S3 summary; the log keeps errors, and every tenant at DEBUG (a line
    # per tenant was ~7% of a batch's time). The batch's totals are logged once at the end.
    log = logger.info if outcome.status == "error" else logger.debug
    log("tenant queried", extra={"bucket": outcome.bucket, "outcome": outcome.status,
                                 "rows": outcome.rows, "duration_ms": outcome.duration_ms,
                                 "error_message": outcome.message})


def query_batch(batch_input: BatchInput, tenants: TenantDatabases, partials: PartialResultStore,
                counters: JobProgressCounters, limits: QueryLimits) -> BatchResult:
    """Query every tenant of the batch, reporting progress as they finish; the rows and the outcomes go to
    S3 (the summary last: its presence means the batch's partials are all in place). A batch whose job
    was cancelled meanwhile stops (StopExecution does not stop a running Lambda) and reports nothing."""
    job_id, batch = batch_input.job_id, batch_input.batch
    progress = BatchProgress(counters, job_id, interval=batch_input.progress_interval_seconds)

    def on_tenant(outcome: TenantOutcome) -> None:
        _log_tenant(outcome)
        progress.tenant_finished(outcome)

    try:
        outcomes, tables = run_batch(
            batch.buckets, tenants, batch_input.sql, batch_input.limit, batch_input.table, limits.timeout_seconds,
            on_tenant=on_tenant, memory_limit_mb=limits.memory_limit_mb, threads=limits.threads,
            deadline=batch_input.deadline,
            concurrency=limits.concurrency if tenants.opens_over_network else 1,
        )
        progress.flush()
    except JobNoLongerProcessing:
        logger.info("job is no longer processing; batch abandoned")
        return BatchResult(batch_index=batch.batch_index, databases=0, rows=0)
    keys = []
    for part, table in enumerate(tables):
        key = partial_key(job_id, batch.batch_index, part)
        partials.put_partial(key, ipc_stream(table))
        keys.append(key)
    partials.put_summary(job_id, BatchSummary(batch_index=batch.batch_index, outcomes=outcomes, partial_keys=keys))
    rows = sum(o.rows for o in outcomes)
    slowest = max(outcomes, key=lambda o: o.duration_ms, default=None)
    logger.info("batch queried", extra={"databases": len(outcomes), "rows": rows,
                                        "errored": sum(o.status == "error" for o in outcomes),
                                        "slowest_bucket": slowest and slowest.bucket,
                                        "slowest_ms": slowest and slowest.duration_ms})
    metrics.add_metric(name="DatabasesQueried", unit="Count", value=sum(o.status == "ok" for o in outcomes))
    metrics.add_metric(name="DatabasesErrored", unit="Count", value=sum(o.status == "error" for o in outcomes))
    return BatchResult(batch_index=batch.batch_index, databases=len(outcomes), rows=rows)
