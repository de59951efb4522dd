"""The caller's jobs, newest first, a page at a time, without their results."""

from __future__ import annotations

import re

from queryall.dal.jobs import JobStore
from queryall.logic.cursors import CursorCodec
from queryall.logic.job_watchdog import settle_overdue
from queryall.logic.polling import JOB_ID as _JOB_ID
from queryall.models.job import Job, JobStatus
from queryall.models.job_views import AdminJobList, AdminJobSummary, JobList, JobSummary, RequestSummary

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# SQL can be 100,000 characters; a page of 100 jobs must stay small.
MAX_SUMMARY_TEXT = 500
_CREATED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


_CURSORS = CursorCodec("jobs", [_CREATED_AT, _JOB_ID])


def encode_cursor(position: tuple[str, str]) -> str:
    return _CURSORS.encode(position)


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (created_at, job_id) a page continues after. The caller's own owner scopes the query, so a
    hand-made cursor can only move within the caller's own jobs."""
    created_at, job_id = _CURSORS.decode(cursor)
    return created_at, job_id


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
                               buckets=request.named_buckets,
                               table=request.table, limit=request.limit),
        error_code=job.error_code,
        progress=job.progress() if job.status is JobStatus.PROCESSING else None,
    )


def list_jobs(jobs: JobStore, owner: str, limit: int, cursor: str | None, now: float,
              max_job_seconds: float | None = None) -> JobList:
    after = decode_cursor(cursor) if cursor else None
    found, next_position = jobs.list_by_owner(owner, limit, after=after, now=now)
    if max_job_seconds is not None:
        found = [settle_overdue(jobs, job, now, max_job_seconds) for job in found]
    return JobList(jobs=[job_summary(job) for job in found],
                   next_cursor=encode_cursor(next_position) if next_position else None)


def list_everyones_jobs(jobs: JobStore, limit: int, cursor: str | None, now: float) -> AdminJobList:
    """Every caller's jobs, newest first, each with its owner: for admins, and only when asked (?all=true)."""
    after = decode_cursor(cursor) if cursor else None
    found = sorted(jobs.list_everyone(now), key=lambda job: (job.created_at, job.job_id), reverse=True)
    if after is not None:
        found = [job for job in found if (job.created_at, job.job_id) < after]
    page = found[:limit]
    more = len(found) > limit
    return AdminJobList(jobs=[AdminJobSummary(**job_summary(job).model_dump(), owner=job.owner) for job in page],
                        next_cursor=encode_cursor((page[-1].created_at, page[-1].job_id)) if more else None)
