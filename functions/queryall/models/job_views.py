"""Response bodies of the wait, history and cancel routes (the OpenAPI document is built from these)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from queryall.models.job import JobProgress, JobStatus
from queryall.models.results import CancelledJob


class WaitResult(BaseModel):
    jobs: list[dict[str, Any]] = Field(
        description="One entry per finished job: job_id, status, and its data/meta or error exactly as "
                    "GET /query-all/jobs/{jobId} returns them.",
    )
    remaining_job_ids: list[str] = Field(
        description="Jobs not returned yet: still processing, or finished but past this response's size "
                    "budget. Wait again with these ids.",
    )
    unknown_job_ids: list[str] = Field(description="Ids that are malformed, unknown, expired or not yours.")
    progress: dict[str, JobProgress] = Field(description="Progress of each job still processing, by job id.")
    timed_out: bool = Field(description="True when the wait ended at timeout_seconds with jobs still processing.")


class WaitResponse(BaseModel):
    data: WaitResult


class RequestSummary(BaseModel):
    sql: str | None = Field(None, description="The submitted SQL, or for a question the SQL generated from it "
                                              "(cut to 500 characters).")
    question: str | None = Field(None, description="The submitted question (cut to 500 characters).")
    buckets: int | None = Field(None, description="How many buckets were named; null for every tenant.")
    table: str | None = None
    limit: int


class JobSummary(BaseModel):
    job_id: str
    status: JobStatus
    created_at: str
    finished_at: str | None = None
    request: RequestSummary
    error_code: str | None = Field(None, description="Set when the job failed.")
    progress: JobProgress | None = Field(None, description="Set while the job is processing.")


class JobList(BaseModel):
    jobs: list[JobSummary] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class JobListResponse(BaseModel):
    data: JobList


class AdminJobSummary(JobSummary):
    owner: str = Field(description="Who submitted the job: a key id, token:<sub>, or key:<fingerprint>.")


class AdminJobList(BaseModel):
    """GET /query-all/jobs?all=true (admins only): every caller's jobs."""

    jobs: list[AdminJobSummary] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class AdminJobListResponse(BaseModel):
    data: AdminJobList


class CancelResponse(BaseModel):
    data: CancelledJob
