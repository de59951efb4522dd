"""Workflow step: every failure path ends here, so the job never stays processing."""

from __future__ import annotations

import time

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.jobs import JobStore
from queryall.handlers import init_done
from queryall.logic import job_lifecycle
from queryall.logic.step_errors import describe_step_error
from queryall.models.workflow import FailJobInput
from queryall.observability import logger, metrics, tracer
from queryall.settings import get_settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=FailJobInput)
def handler(event: FailJobInput, context: LambdaContext) -> dict:
    logger.append_keys(job_id=event.job_id)
    message = event.error_message or (
        f"Query workflow failed: {describe_step_error(event.error)}" if event.error else "Query workflow failed"
    )
    jobs = JobStore(get_settings().require("jobs_table"))
    changed = job_lifecycle.fail(jobs, event.job_id, event.error_code, message, time.time())
    return {"failed": changed}


init_done()
