"""Workflow step: which tenant databases to query, in batches."""

from __future__ import annotations

from queryall.dal.job_documents import JobDocuments
from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.map_items import MapItemStore
from queryall.dal.tenant_databases import tenant_databases
from queryall.handlers.workflow_step import workflow_step
from queryall.logic.planning import MapLimits, plan_job
from queryall.models.execution import ExecutionInput
from queryall.settings import get_settings


@workflow_step(ExecutionInput, settings=("tenant_databases", "catalog_table", "results_bucket", "jobs_table"))
def handler(event: ExecutionInput) -> dict:
    settings = get_settings()
    limits = MapLimits(settings.query_batch_size, settings.map_max_concurrency, settings.distributed_map_threshold,
                       settings.distributed_map_max_concurrency)
    plan = plan_job(event, tenant_databases(settings.require("tenant_databases")), settings.require("catalog_table"),
                    MapItemStore(settings.require("results_bucket")),
                    JobProgressCounters(settings.require("jobs_table")), limits,
                     JobDocuments(settings.require("results_bucket")))
    return plan.model_dump(mode="json")
