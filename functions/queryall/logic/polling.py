"""Reading a job for the caller: one DynamoDB read, the stored JSON returned as-is.

A completed job's rows are bzip2-compressed JSON text in the item; they are decompressed (standard
library only) and spliced into the body without re-encoding, so numbers keep their exact digits.
"""

from __future__ import annotations

import bz2
import json
import re

from queryall.dal.jobs import JobStore
from queryall.dal.result_files import ResultStore
from queryall.errors import NotFound
from queryall.logic.paging import next_cursor
from queryall.models.job import Job, JobStatus
from queryall.models.result_format import ResultFormat

_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_job_id(value: str) -> bool:
    return _JOB_ID.fullmatch(value) is not None


def find_job(jobs: JobStore, job_id: str, now: float, owner: str) -> Job:
    """The caller's job. Another caller's job reads as unknown: its existence is not disclosed."""
    job = jobs.get(job_id) if is_job_id(job_id) else None
    if job is None or job.is_expired(now) or job.owner != owner:
        raise NotFound(f"Job not found: {job_id}")
    return job


class ResultLinks:
    """Where a job's full result is read from and downloaded: presigned URLs that never outlive the job."""

    def __init__(self, store: ResultStore, expiry_seconds: int, now: float) -> None:
        self.store = store
        self.expiry_seconds = expiry_seconds
        self.now = now

    def url(self, job: Job, result_format: ResultFormat) -> str:
        expires_in = max(1, min(self.expiry_seconds, int(job.expires_at - self.now)))
        return self.store.presigned_url(job.job_id, result_format, expires_in)


def completed_meta(
    job: Job, result_format: ResultFormat, links: ResultLinks | None, returned_rows: int | None = None
) -> dict:
    """The stored meta plus what depends on the response: rows returned (default: those the item holds),
    the cursor after them, and the download URL (when links are given)."""
    meta = json.loads(job.meta or "{}")
    if returned_rows is not None:
        meta.update(returned_rows=returned_rows, truncated=returned_rows < meta["total_rows"])
    meta["next_cursor"] = next_cursor(job.job_id, 0, meta["returned_rows"], meta["total_rows"])
    if links is not None:
        meta["result_url"] = links.url(job, result_format)
    return meta


def sql_member(job: Job) -> str:
    """`,"sql":"…"` for a question job whose SQL was generated (as the reference's NL mode returns it in
    `data`), else nothing; JSON text to splice after a body's rows."""
    if job.request.question is None or job.request.sql is None:
        return ""
    return ',"sql":' + json.dumps(job.request.sql, ensure_ascii=False)


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
