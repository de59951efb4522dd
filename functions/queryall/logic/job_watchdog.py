"""No stuck jobs: a job whose execution ended without the workflow recording it ends `failed`.

The workflow's own failure path (FailJob) covers every error a state catches. What it cannot cover is
an execution that ends from outside: stopped (StopExecution, not by a cancel), timed out by the state
machine's TimeoutSeconds, or failed where no Catch reaches. Two things close that gap:

- the "Step Functions Execution Status Change" event of such an execution (`execution_ended`);
- reading a job: one still processing past the maximum job time (the state machine's TimeoutSeconds)
  cannot have a running execution any more, so it reads as failed `execution_timed_out`, and that is
  written back once (`settle_overdue`), even if the event never arrived.

Both writes are conditional on the job still processing (`job_lifecycle.fail`): a job completed,
failed or cancelled meanwhile keeps its state, so a cancelled job (whose execution is ABORTED by the
cancel itself) stays cancelled, and a repeated event changes nothing.
"""

from __future__ import annotations

from queryall.dal.jobs import JobStore
from queryall.logic import job_lifecycle
from queryall.models.job import Job, JobStatus
from queryall.observability import logger

EXECUTION_TIMED_OUT = "execution_timed_out"
# The execution statuses that end a job from outside, and the error code each gives it.
ERROR_CODES = {
    "FAILED": "execution_failed",
    "TIMED_OUT": EXECUTION_TIMED_OUT,
    "ABORTED": "execution_aborted",
}
_MESSAGES = {
    "FAILED": "The query workflow failed before it could record the job's outcome",
    "TIMED_OUT": "The query workflow ran past its time limit",
    "ABORTED": "The query workflow was stopped before the job finished",
}


def execution_ended(jobs: JobStore, job_id: str, status: str, now: float, cause: str | None = None) -> bool:
    """Record that the job's execution ended with `status` (FAILED, TIMED_OUT, ABORTED); True when the
    job was still processing and is now failed."""
    if status not in ERROR_CODES:
        raise ValueError(f"not an execution status that ends a job: {status}")
    message = _MESSAGES[status] + (f": {cause}" if cause else "")
    changed = job_lifecycle.fail(jobs, job_id, ERROR_CODES[status], message, now)
    logger.info("execution ended", extra={"execution_status": status, "job_failed_now": changed})
    return changed


def is_overdue(job: Job, now: float, max_job_seconds: float) -> bool:
    return job.status is JobStatus.PROCESSING and now - job.submitted_at > max_job_seconds


def settle_overdue(jobs: JobStore, job: Job, now: float, max_job_seconds: float) -> Job:
    """The job as the caller should see it: one processing past `max_job_seconds` is failed
    execution_timed_out, written back once (conditional: a later read finds it failed and writes
    nothing). Callers that show the job whole read it again when it was overdue (`is_overdue`): it may
    have finished meanwhile."""
    if not is_overdue(job, now, max_job_seconds):
        return job
    message = f"The job did not finish within the maximum job time ({max_job_seconds:g} s)"
    if job_lifecycle.fail(jobs, job.job_id, EXECUTION_TIMED_OUT, message, now):
        logger.warning("overdue job marked failed", extra={"job_id": job.job_id})
    return job.model_copy(update={"status": JobStatus.FAILED, "error_code": EXECUTION_TIMED_OUT,
                                  "error_message": message, "finished_at": job_lifecycle.iso(now)})
