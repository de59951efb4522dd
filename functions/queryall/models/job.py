"""The job item: one per submitted query, the single record of its state."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class JobStatus(StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobRequest(BaseModel):
    """What the caller asked for, as recorded on the job and passed to the workflow.

    The buckets named travel with it only up to INLINE_BUCKETS_BYTES; a longer list (10,000 ids of 63
    characters are 660 KB) is kept in S3 (`dal.job_documents`, `buckets.json`) and only its length here,
    so the job item stays far below DynamoDB's 400 KB, the job list reads no per-bucket data, and the
    workflow input stays far below Step Functions' 256 KB."""

    sql: str | None = None
    question: str | None = None
    buckets: list[str] | None = None
    limit: int
    table: str | None = None
    bucket_count: int | None = None  # how many buckets were named (set whenever some were)
    buckets_stored: bool = False  # the named buckets are in S3, not in `buckets`
    timeout_seconds: int | None = None  # the job's deadline, after submitted_at (the default when not asked)

    @property
    def named_buckets(self) -> int | None:
        return self.bucket_count if self.bucket_count is not None else (
            None if self.buckets is None else len(self.buckets))
    # The submitter's bucket scope (None: every tenant), checked again when the targets are planned.
    scope: list[str] | None = None


class JobProgress(BaseModel):
    """How far a processing job got. `databases_total` is unknown (None) until the plan is made."""

    databases_total: int | None = None
    databases_done: int = 0
    databases_errored: int = 0
    rows_so_far: int = 0


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
    # How many state changes the job has had (1 when created); each transition adds one.
    state_sequence: int | None = None
    reply_to: str | None = None  # given by an event submit (models.event_submit)
    finished_at: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Completed jobs keep their answer as JSON text (the rows compressed), so poll returns it without re-encoding.
    columns: str | None = None
    rows_bz2: bytes | None = None  # bzip2 of the JSON text of the rows kept (a prefix of the result)
    meta: str | None = None
    # Progress counters, top-level so workers can add to them atomically (UpdateItem ADD).
    databases_total: int | None = None
    databases_done: int = 0
    databases_errored: int = 0
    rows_so_far: int = 0

    def progress(self) -> JobProgress:
        total = self.databases_total
        # A retried batch may count a tenant twice; never show more done than there is.
        done = self.databases_done if total is None else min(self.databases_done, total)
        return JobProgress(databases_total=total, databases_done=done,
                           databases_errored=min(self.databases_errored, done), rows_so_far=self.rows_so_far)

    def is_expired(self, now: float) -> bool:
        # TTL deletion lags; an item past its expiry must read as gone.
        return now >= self.expires_at
