"""Cancelling a job: mark it cancelled, then stop its workflow."""

from __future__ import annotations

from queryall.dal.jobs import JobStore
from queryall.dal.workflow import QueryWorkflow, WorkflowStopFailed
from queryall.errors import Conflict
from queryall.logic import job_lifecycle
from queryall.logic.polling import find_job
from queryall.models.job import Job, JobStatus
from queryall.observability import logger


def cancel_job(jobs: JobStore, workflow: QueryWorkflow, job_id: str, owner: str, now: float) -> Job:
    """The cancelled job. Cancelling again is harmless; a finished job raises Conflict.

    The status changes first, conditionally on the job processing, so the one DynamoDB write decides
    between cancel and a concurrent completion; late workflow steps cannot undo it."""
    job = find_job(jobs, job_id, now, owner)
    if job.status is JobStatus.PROCESSING:
        if job_lifecycle.cancel(jobs, job_id, now):
            try:
                workflow.stop(job_id)
            except WorkflowStopFailed:
                # Its remaining steps only write conditionally on processing, and batches stop at their
                # next progress update: the job stays cancelled either way.
                logger.warning("job cancelled but its execution could not be stopped", exc_info=True)
            return job.model_copy(update={"status": JobStatus.CANCELLED})
        job = find_job(jobs, job_id, now, owner)  # it finished (or was cancelled) meanwhile
    if job.status is JobStatus.CANCELLED:
        return job
    raise Conflict(f"Job {job_id} has already {job.status.value}; only a processing job can be cancelled")
