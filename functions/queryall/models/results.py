"""Response bodies of poll (GET /query-all/jobs/{jobId}) and the results pages (…/results).

The handlers write these bodies as JSON text (stored rows are spliced in without re-encoding); the
models are what the OpenAPI document shows and what the end-to-end tests validate real responses with.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from queryall.models.job import JobProgress


class ColumnType(BaseModel):
    name: str
    type: str = Field(description="DuckDB type name.", examples=["BIGINT", "DECIMAL(12,2)", "VARCHAR[]"])


class _WithSchema(BaseModel):
    # `schema` is the API's field name; pydantic's BaseModel has a `schema` attribute, hence the alias.
    model_config = ConfigDict(populate_by_name=True)

    schema_: list[ColumnType] = Field(alias="schema", description="Each column's name and DuckDB type, in order.")


class _ResultCounts(BaseModel):
    total_rows: int = Field(description="Rows in the full result.")
    returned_rows: int = Field(description="Rows this response holds.")
    truncated: bool = Field(description="True when this response holds fewer rows than the result.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to GET /query-all/jobs/{jobId}/results for the rows after these; "
                    "null when no rows follow.",
    )
    result_url: str | None = Field(
        None, description="Presigned HTTPS URL of the full result in the requested format (json: "
                          '`{"columns", "rows"}`; arrow: Arrow IPC file; csv; parquet). Expires after '
                          "RESULT_URL_EXPIRY_SECONDS (default 900) or with the job, whichever is first.",
    )


class JobResultMeta(_WithSchema, _ResultCounts):
    databases_queried: int
    databases_skipped: int
    databases_errored: int
    execution_time_seconds: float
    skipped: list[str] = Field(description="Tenants without the requested `table`.")
    errors: dict[str, str] = Field(description="Per-tenant errors, by bucket.")
    deadline_exceeded: bool = Field(False, description="Present, and true, when the job's deadline (timeout_seconds) "
                                                       "passed before every tenant was queried; those are in errors.")


class PageMeta(_WithSchema, _ResultCounts):
    offset: int = Field(description="Position of this page's first row in the full result.")


class JsonRows(BaseModel):
    columns: list[str]
    rows: list[list[Any]] = Field(description="Ordered by `_bucket`, then each database's own order.")
    sql: str | None = Field(None, description="Present only for a question (NL mode): the SQL generated from "
                                              "it, which ran on every database.")


class ArrowSummary(BaseModel):
    sql: str | None = Field(description="The SQL that was run on every database.")
    total_rows: int = Field(description="Rows in the full result.")
    execution_time_ms: int


class ArrowResult(BaseModel):
    result: str = Field(description="Base64 Apache Arrow IPC stream holding `meta.returned_rows` rows.")
    summary: ArrowSummary


class CompletedJobResponse(BaseModel):
    data: JsonRows | ArrowResult = Field(description="`result` and `summary` with format=arrow, else rows.")
    meta: JobResultMeta


class ResultsPageResponse(BaseModel):
    data: JsonRows | ArrowResult = Field(description="`result` and `summary` with format=arrow, else rows.")
    meta: PageMeta


class ProcessingJob(BaseModel):
    job_id: str
    status: Literal["processing"]
    progress: JobProgress
    sql: str | None = Field(None, description="For a question, the SQL generated from it, once it is.")


class CancelledJob(BaseModel):
    job_id: str
    status: Literal["cancelled"]


class FailedJob(BaseModel):
    job_id: str
    status: Literal["failed"]
    error_code: str = Field(examples=["internal_error", "generation_failed", "start_failed"])
    error_message: str


class JobStateResponse(BaseModel):
    data: ProcessingJob | FailedJob | CancelledJob
