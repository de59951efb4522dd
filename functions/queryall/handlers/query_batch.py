"""Workflow step: run the query on one batch of tenants; the rows go to S3, a count comes back."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.partial_results import PartialResultStore, partial_key
from queryall.dal.tenant_databases import tenant_databases
from queryall.handlers import init_done
from queryall.logic.combined_result import ipc_stream
from queryall.logic.progress import BatchProgress, JobNoLongerProcessing
from queryall.logic.query_workers import run_batch
from queryall.models.workflow import BatchInput, BatchResult, BatchSummary, TenantOutcome
from queryall.observability import logger, metrics, tracer
from queryall.settings import get_settings


def _log_tenant(outcome: TenantOutcome) -> None:
    # Every outcome is in the batch's S3 summary; the log keeps errors, and every tenant at DEBUG (a line
    # per tenant was ~7% of a batch's time). The batch's totals are logged once at the end.
    log = logger.info if outcome.status == "error" else logger.debug
    log("tenant queried", extra={"bucket": outcome.bucket, "outcome": outcome.status,
                                 "rows": outcome.rows, "duration_ms": outcome.duration_ms,
                                 "error_message": outcome.message})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=BatchInput)
def handler(event: BatchInput, context: LambdaContext) -> dict:
    logger.append_keys(job_id=event.job_id, batch_index=event.batch.batch_index)
    settings = get_settings()
    tenants = tenant_databases(settings.require("tenant_databases"))
    store = PartialResultStore(settings.require("results_bucket"))
    progress = BatchProgress(JobProgressCounters(settings.require("jobs_table")), event.job_id,
                             interval=event.progress_interval_seconds)

    def on_tenant(outcome: TenantOutcome) -> None:
        _log_tenant(outcome)
        progress.tenant_finished(outcome)

    try:
        outcomes, tables = run_batch(
            event.batch.buckets, tenants, event.sql, event.limit, event.table,
            settings.query_timeout_seconds, on_tenant=on_tenant,
            memory_limit_mb=settings.query_memory_limit_mb, threads=settings.query_threads,
        )
        progress.flush()
    except JobNoLongerProcessing:
        # Cancelled: StopExecution does not stop a running Lambda, so the batch stops itself.
        logger.info("job is no longer processing; batch abandoned")
        return BatchResult(batch_index=event.batch.batch_index, databases=0, rows=0).model_dump()
    keys = []
    for part, table in enumerate(tables):
        key = partial_key(event.job_id, event.batch.batch_index, part)
        store.put_partial(key, ipc_stream(table))
        keys.append(key)
    # The summary is written last: its presence means the batch's partials are all in place.
    store.put_summary(event.job_id, BatchSummary(batch_index=event.batch.batch_index, outcomes=outcomes,
                                                 partial_keys=keys))
    rows = sum(o.rows for o in outcomes)
    slowest = max(outcomes, key=lambda o: o.duration_ms, default=None)
    logger.info("batch queried", extra={"databases": len(outcomes), "rows": rows,
                                        "errored": sum(o.status == "error" for o in outcomes),
                                        "slowest_bucket": slowest and slowest.bucket,
                                        "slowest_ms": slowest and slowest.duration_ms})
    metrics.add_metric(name="DatabasesQueried", unit="Count", value=sum(o.status == "ok" for o in outcomes))
    metrics.add_metric(name="DatabasesErrored", unit="Count", value=sum(o.status == "error" for o in outcomes))
    return BatchResult(batch_index=event.batch.batch_index, databases=len(outcomes), rows=rows).model_dump()


init_done()
