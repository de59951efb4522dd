"""Reading a job for the caller: one DynamoDB read, the stored JSON returned as-is."""

from __future__ import annotations

import json
import re

from queryall.dal.jobs import JobStore
from queryall.errors import NotFound
from queryall.models.job import Job, JobStatus

_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def find_job(jobs: JobStore, job_id: str, now: float) -> Job:
    job = jobs.get(job_id) if _JOB_ID.match(job_id) else None
    if job is None or job.is_expired(now):
        raise NotFound(f"Job not found: {job_id}")
    return job


def job_response_body(job: Job) -> str:
    """The poll response body, as JSON text. Completed results are spliced in without re-encoding."""
    if job.status is JobStatus.COMPLETED:
        return f'{{"data":{{"columns":{job.columns},"rows":{job.rows}}},"meta":{job.meta}}}'
    data: dict = {"job_id": job.job_id, "status": job.status.value}
    if job.status is JobStatus.FAILED:
        data["error_code"] = job.error_code
        data["error_message"] = job.error_message
    return json.dumps({"data": data}, separators=(",", ":"))
