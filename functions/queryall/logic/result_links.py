"""What a completed job's response says about its full result beyond the rows: the stored meta, the cursor
after the rows returned, and presigned download URLs. Shared by the poll body (no pyarrow) and the result
pages (pyarrow), so neither imports the other."""

from __future__ import annotations

import json

from queryall.dal.job_documents import REPORTED_TENANTS, JobDocuments
from queryall.dal.result_files import ResultStore
from queryall.logic.paging import next_cursor
from queryall.models.job import Job
from queryall.models.result_format import ResultFormat


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
    if meta.pop("reports_stored", False):  # thousands of skipped or errored tenants: kept in S3
        if links is None:
            raise ValueError("this job's reports are in S3: links are required")
        meta.update(JobDocuments(links.store.bucket).get(job.job_id, REPORTED_TENANTS))
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
