"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# A bucket id names a tenant; hyphens become underscores in its database name.
BucketId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")]
TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


class SubmitRequest(BaseModel):
    """POST /query-all body: exactly one of `sql` or `question`."""

    model_config = ConfigDict(extra="forbid")

    sql: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = Field(
        None, description="One read-only SELECT, run on every target database.",
        examples=["SELECT count(*) AS total FROM person"],
    )
    question: Annotated[str, StringConstraints(min_length=1, max_length=2_000)] | None = Field(
        None, description="A natural-language question turned into SQL once, then run everywhere.",
    )
    buckets: Annotated[list[BucketId], Field(min_length=1, max_length=10_000)] | None = Field(
        None, description="Only these tenants (default: every tenant database).",
    )
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, strict=True)] = Field(
        DEFAULT_LIMIT, description="Maximum rows returned per database.",
    )
    table: TableName | None = Field(
        None, description="Skip every database that lacks this table; those are reported as skipped.",
    )
    timeout_seconds: Annotated[int, Field(ge=1, le=900, strict=True)] | None = Field(
        None, description="The job's deadline, in seconds after submit (default 300, at most 900; both are "
                          "deployment settings). When it passes, tenants not yet queried are not started and a "
                          "running tenant query is stopped; the job completes with the rows it has, the tenants "
                          "left out in meta.errors as \"Job deadline exceeded\", and meta.deadline_exceeded true.",
    )

    @model_validator(mode="after")
    def _exactly_one_of_sql_or_question(self) -> SubmitRequest:
        if (self.sql is None) == (self.question is None):
            raise ValueError("exactly one of 'sql' or 'question' is required")
        return self


class SubmittedJob(BaseModel):
    job_id: str
    status: Literal["processing"] = "processing"


class SubmitResponse(BaseModel):
    data: SubmittedJob


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_sql"])
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
