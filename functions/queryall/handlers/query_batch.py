"""Workflow step: run the query on one batch of tenants; the rows go to S3, a count comes back."""

from __future__ import annotations

import pyarrow as pa
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.partial_results import PartialResultStore, partial_key
from queryall.dal.tenant_databases import tenant_databases
from queryall.logic.tenant_query import run_batch
from queryall.models.workflow import BatchInput, BatchResult, BatchSummary, TenantOutcome
from queryall.observability import logger, metrics, tracer
from queryall.settings import get_settings


def _arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _log_tenant(outcome: TenantOutcome) -> None:
    logger.info("tenant queried", extra={"bucket": outcome.bucket, "outcome": outcome.status,
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
    outcomes, tables = run_batch(
        event.batch.buckets, tenants.location, event.sql, event.limit, event.table,
        settings.query_timeout_seconds, on_tenant=_log_tenant,
    )
    keys = []
    for part, table in enumerate(tables):
        key = partial_key(event.job_id, event.batch.batch_index, part)
        store.put_partial(key, _arrow_stream(table))
        keys.append(key)
    # The summary is written last: its presence means the batch's partials are all in place.
    store.put_summary(event.job_id, BatchSummary(batch_index=event.batch.batch_index, outcomes=outcomes,
                                                 partial_keys=keys))
    rows = sum(o.rows for o in outcomes)
    metrics.add_metric(name="DatabasesQueried", unit="Count", value=sum(o.status == "ok" for o in outcomes))
    metrics.add_metric(name="DatabasesErrored", unit="Count", value=sum(o.status == "error" for o in outcomes))
    return BatchResult(batch_index=event.batch.batch_index, databases=len(outcomes), rows=rows).model_dump()
