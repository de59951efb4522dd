"""Workflow step: which tenant databases to query, in batches."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.job_documents import JobDocuments
from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.map_items import MapItemStore
from queryall.dal.tenant_databases import tenant_databases
from queryall.handlers import init_done
from queryall.logic.catalog import catalog_entries
from queryall.logic.distribution import distribute
from queryall.logic.planning import plan_targets
from queryall.logic.progress import record_plan
from queryall.models.execution import ExecutionInput
from queryall.observability import logger, tracer
from queryall.settings import get_settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=ExecutionInput)
def handler(event: ExecutionInput, context: LambdaContext) -> dict:
    logger.append_keys(job_id=event.job_id)
    settings = get_settings()
    plan = plan_targets(
        event,
        tenant_databases(settings.require("tenant_databases")),
        settings.query_batch_size,
        settings.map_max_concurrency,
        catalog=catalog_entries(settings.require("catalog_table")) if event.table else None,
        documents=JobDocuments(settings.require("results_bucket")),
    )
    plan = distribute(plan, event.job_id, threshold=settings.distributed_map_threshold,
                      max_batch_size=settings.query_batch_size, max_concurrency=settings.map_max_concurrency,
                      distributed_max_concurrency=settings.distributed_map_max_concurrency,
                      items=MapItemStore(settings.require("results_bucket")),
                      documents=JobDocuments(settings.require("results_bucket")))
    logger.info("planned", extra={"databases": plan.databases_total, "batches": len(plan.batches),
                                  "batch_size": plan.batch_size, "mode": plan.mode})
    record_plan(JobProgressCounters(settings.require("jobs_table")), event.job_id, plan.databases_total,
                plan.missing_count)
    return plan.model_dump(mode="json")


init_done()
