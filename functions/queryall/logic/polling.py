"""Reading a job for the caller: one DynamoDB read, the stored JSON returned as-is.

A completed job's rows are bzip2-compressed JSON text in the item; they are decompressed (standard
library only) and spliced into the body without re-encoding, so numbers keep their exact digits.
"""

from __future__ import annotations

import bz2
import json
import re

from queryall.dal.jobs import JobStore
from queryall.errors import NotFound
from queryall.logic.result_links import ResultLinks, completed_meta, sql_member
from queryall.models.job import Job, JobStatus
from queryall.models.result_format import ResultFormat

JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_job_id(value: str) -> bool:
    return JOB_ID.fullmatch(value) is not None


def find_job(jobs: JobStore, job_id: str, now: float, owner: str) -> Job:
    """The caller's job. Another caller's job reads as unknown: its existence is not disclosed."""
    job = jobs.get(job_id) if is_job_id(job_id) else None
    if job is None or job.is_expired(now) or job.owner != owner:
        raise NotFound(f"Job not found: {job_id}")
    return job


def job_response_body(
    job: Job, result_format: ResultFormat = ResultFormat.JSON, links: ResultLinks | None = None
) -> str:
    """The poll response body, as JSON text. Without ``links`` a completed body has no ``result_url``."""
    if job.status is JobStatus.COMPLETED:
        if result_format is ResultFormat.ARROW:
            if links is None:
                raise ValueError("format=arrow reads the result file: links are required")
            from queryall.logic.result_pages import arrow_poll_body  # pyarrow: only this format loads it

            return arrow_poll_body(job, links)
        rows = bz2.decompress(job.rows_bz2 or b"").decode("utf-8")
        meta = json.dumps(completed_meta(job, result_format, links), separators=(",", ":"), ensure_ascii=False)
        return f'{{"data":{{"columns":{job.columns},"rows":{rows}{sql_member(job)}}},"meta":{meta}}}'
    data: dict = {"job_id": job.job_id, "status": job.status.value}
    if job.status is JobStatus.PROCESSING:
        data["progress"] = job.progress().model_dump()
        if job.request.question is not None and job.request.sql is not None:
            data["sql"] = job.request.sql
    if job.status is JobStatus.FAILED:
        data["error_code"] = job.error_code
        data["error_message"] = job.error_message
    return json.dumps({"data": data}, separators=(",", ":"))
