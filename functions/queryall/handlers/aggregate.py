"""Workflow step: merge the partial results and complete the job."""

from __future__ import annotations

import time

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.jobs import JobStore
from queryall.dal.partial_results import PartialResultStore
from queryall.logic import job_lifecycle
from queryall.logic.aggregation import collect, completed_item
from queryall.models.workflow import AggregateInput
from queryall.observability import logger, metrics, tracer
from queryall.settings import get_settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=AggregateInput)
def handler(event: AggregateInput, context: LambdaContext) -> dict:
    logger.append_keys(job_id=event.job_id)
    settings = get_settings()
    jobs = JobStore(settings.require("jobs_table"))
    job = jobs.get(event.job_id)
    if job is None:
        logger.warning("job item is gone (expired); nothing to complete")
        return {"completed": False}
    result = collect(event, PartialResultStore(settings.require("results_bucket")))
    now = time.time()
    columns, rows, meta = completed_item(job, result, execution_time_seconds=now - event.submitted_at, now=now)
    completed = job_lifecycle.complete(jobs, event.job_id, columns, rows, meta, now)
    metrics.add_metric(name="Rows", unit="Count", value=result.table.num_rows)
    logger.info("aggregated", extra={"total_rows": meta["total_rows"], "truncated": meta["truncated"]})
    return {"completed": completed}
