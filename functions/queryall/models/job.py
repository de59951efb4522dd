"""The job item: one per submitted query, the single record of its state."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class JobStatus(StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class JobRequest(BaseModel):
    """What the caller asked for, as recorded on the job and passed to the workflow."""

    sql: str | None = None
    question: str | None = None
    buckets: list[str] | None = None
    limit: int
    table: str | None = None


class Job(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_id: str
    status: JobStatus
    owner: str
    created_at: str
    submitted_at: float
    expires_at: int
    request: JobRequest
    execution_arn: str | None = None
    finished_at: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Completed jobs keep their answer as JSON text, so poll can return it without re-encoding.
    columns: str | None = None
    rows: str | None = None
    meta: str | None = None

    def is_expired(self, now: float) -> bool:
        # TTL deletion lags; an item past its expiry must read as gone.
        return now >= self.expires_at
