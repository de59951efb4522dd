"""The caller's jobs, newest first, a page at a time, without their results."""

from __future__ import annotations

import base64
import json
import re

from queryall.dal.jobs import JobStore
from queryall.errors import InvalidRequest
from queryall.logic.polling import is_job_id
from queryall.models.job import Job, JobStatus
from queryall.models.job_views import JobList, JobSummary, RequestSummary

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# SQL can be 100,000 characters; a page of 100 jobs must stay small.
MAX_SUMMARY_TEXT = 500
_CREATED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def encode_cursor(position: tuple[str, str]) -> str:
    raw = json.dumps(list(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (created_at, job_id) a page continues after. The caller's own owner scopes the query, so a
    hand-made cursor can only move within the caller's own jobs."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except ValueError:  # also bad base64, non-ASCII and undecodable bytes
        value = None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
            and _CREATED_AT.fullmatch(value[0]) and is_job_id(value[1])):
        raise InvalidRequest("cursor: not a cursor from a previous page")
    return value[0], value[1]


def _cut(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_SUMMARY_TEXT else text[:MAX_SUMMARY_TEXT] + "…"


def job_summary(job: Job) -> JobSummary:
    request = job.request
    return JobSummary(
        job_id=job.job_id,
        status=job.status,
        created_at=job.created_at,
        finished_at=job.finished_at,
        request=RequestSummary(sql=_cut(request.sql), question=_cut(request.question),
                               buckets=None if request.buckets is None else len(request.buckets),
                               table=request.table, limit=request.limit),
        error_code=job.error_code,
        progress=job.progress() if job.status is JobStatus.PROCESSING else None,
    )


def list_jobs(jobs: JobStore, owner: str, limit: int, cursor: str | None, now: float) -> JobList:
    after = decode_cursor(cursor) if cursor else None
    found, next_position = jobs.list_by_owner(owner, limit, after=after, now=now)
    return JobList(jobs=[job_summary(job) for job in found],
                   next_cursor=encode_cursor(next_position) if next_position else None)
