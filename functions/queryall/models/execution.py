"""The query workflow's input: what submit starts an execution with and PlanTargets reads.

Its own module, apart from the other steps' models (`models.workflow`): submit builds only this one,
and each pydantic model costs its schema build at import (submit's cold start).
"""

from __future__ import annotations

from pydantic import BaseModel


class ExecutionInput(BaseModel):
    job_id: str
    submitted_at: float
    # submitted_at + the request's timeout_seconds: the batches stop there (see BatchInput.deadline).
    deadline: float | None = None
    sql: str | None = None
    question: str | None = None
    buckets: list[str] | None = None
    limit: int
    table: str | None = None
    # A long list of buckets is not in the input: PlanTargets reads it from S3 (see JobRequest).
    bucket_count: int | None = None
    buckets_stored: bool = False
    # The submitter's bucket scope (None: every tenant): PlanTargets never plans a tenant outside it.
    scope: list[str] | None = None
