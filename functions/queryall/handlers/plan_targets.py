"""Workflow step: which tenant databases to query, in batches."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.tenant_databases import tenant_databases
from queryall.logic.planning import plan_targets
from queryall.models.workflow import ExecutionInput
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
    )
    logger.info("planned", extra={"databases": plan.databases_total, "batches": len(plan.batches)})
    return plan.model_dump(mode="json")
