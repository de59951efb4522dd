"""Workflow step: run the query on one batch of tenants; the rows go to S3, a count comes back."""

from __future__ import annotations

from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.partial_results import PartialResultStore
from queryall.dal.tenant_databases import tenant_databases
from queryall.handlers.workflow_step import workflow_step
from queryall.logic.batch_run import QueryLimits, query_batch
from queryall.models.workflow import BatchInput
from queryall.settings import get_settings


@workflow_step(BatchInput, settings=("tenant_databases", "results_bucket", "jobs_table"))
def handler(event: BatchInput) -> dict:
    settings = get_settings()
    limits = QueryLimits(settings.query_timeout_seconds, settings.query_memory_limit_mb, settings.query_threads,
                         settings.query_concurrency)
    tenants = tenant_databases(settings.require("tenant_databases"), settings.tenant_download_max_mb)
    return query_batch(event, tenants,
                       PartialResultStore(settings.require("results_bucket")),
                       JobProgressCounters(settings.require("jobs_table")), limits).model_dump()
