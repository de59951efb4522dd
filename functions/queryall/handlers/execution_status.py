"""EventBridge rule target: an execution of the query state machine ended FAILED, TIMED_OUT or ABORTED.

The job is marked failed unless it already finished (`logic.job_watchdog`); the rule's pattern names
the state machine and these statuses, so anything else arriving here is logged and left alone.
"""

from __future__ import annotations

import time

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.jobs import JobStore
from queryall.handlers.function import function_handler
from queryall.logic.job_watchdog import ERROR_CODES, execution_ended
from queryall.logic.polling import is_job_id
from queryall.models.execution_events import ExecutionStatusEvent
from queryall.observability import logger
from queryall.settings import get_settings


@event_parser(model=ExecutionStatusEvent)
def on_status_change(event: ExecutionStatusEvent, context: LambdaContext) -> dict:
    detail = event.detail
    logger.append_keys(job_id=detail.name, execution_arn=detail.executionArn)
    if detail.status not in ERROR_CODES or not is_job_id(detail.name):
        # A child execution of a distributed Map, or a status that ends no job.
        logger.info("execution status change ignored", extra={"execution_status": detail.status})
        return {"failed": False}
    cause = detail.error if not detail.cause else f"{detail.error or 'error'}: {detail.cause}"
    jobs = JobStore(get_settings().require("jobs_table"))
    return {"failed": execution_ended(jobs, detail.name, detail.status, time.time(), cause)}


handler = function_handler(on_status_change, settings=("jobs_table",), traced=True)
