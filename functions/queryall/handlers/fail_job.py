"""Workflow step: every failure path ends here, so the job never stays processing."""

from __future__ import annotations

import time

from queryall.dal.jobs import JobStore
from queryall.handlers.workflow_step import workflow_step
from queryall.logic import job_lifecycle
from queryall.logic.step_errors import describe_step_error
from queryall.models.workflow import FailJobInput
from queryall.settings import get_settings


@workflow_step(FailJobInput, settings=("jobs_table",))
def handler(event: FailJobInput) -> dict:
    message = event.error_message or (
        f"Query workflow failed: {describe_step_error(event.error)}" if event.error else "Query workflow failed"
    )
    jobs = JobStore(get_settings().require("jobs_table"))
    changed = job_lifecycle.fail(jobs, event.job_id, event.error_code, message, time.time())
    return {"failed": changed}
