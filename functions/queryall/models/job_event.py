"""The event put on EventBridge at every job state change ("Query-All Job State Change").

The README and docs/events/job-state-change.schema.json show this model's JSON Schema (a test keeps the
file equal to `event_schema()`). Delivery is at least once: consumers dedupe on `job_id` +
`sequenceNumber`, which grows with each state change of one job.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from queryall.models.job import JobStatus

EVENT_SOURCE = "queryall"
DETAIL_TYPE = "Query-All Job State Change"
MAX_EVENT_SQL = 500


class JobMetaSummary(BaseModel):
    """The counts of a completed job's meta (never its rows, skipped lists or errors)."""

    model_config = ConfigDict(extra="forbid")

    databases_queried: int
    databases_skipped: int
    databases_errored: int
    total_rows: int
    truncated: bool = Field(description="True when the job item (and poll) holds fewer rows than the result.")
    execution_time_seconds: float


class ResultLocation(BaseModel):
    """Where a completed job's full result is in S3 (read with the consumer's own S3 access, not a URL)."""

    model_config = ConfigDict(extra="forbid")

    bucket: str
    keys: dict[str, str] = Field(description="Object key of the full result in each format (json, arrow, csv, "
                                             "parquet).")


class JobStateChange(BaseModel):
    """`detail` of a "Query-All Job State Change" event."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    owner: str
    currentState: JobStatus  # noqa: N815 - Athena's state-change events spell it so
    previousState: JobStatus | None = Field(description="null when the job was just created.")  # noqa: N815
    sequenceNumber: int = Field(ge=1, description="Grows with each state change of the job (1: created as "  # noqa: N815
                                                  "processing). Dedupe on job_id + sequenceNumber.")
    submitted_at: str = Field(description="When the job was created (ISO 8601, UTC).")
    finished_at: str | None = None
    sql: str | None = Field(None, description=f"The job's SQL (for a question, the generated SQL), cut to "
                                              f"{MAX_EVENT_SQL} characters.")
    meta: JobMetaSummary | None = Field(None, description="Set when completed.")
    error_code: str | None = Field(None, description="Set when failed.")
    error_message: str | None = Field(None, description="Set when failed.")
    result: ResultLocation | None = Field(None, description="Set when completed.")


def event_schema() -> dict[str, Any]:
    """JSON Schema of the whole EventBridge event as a consumer receives it (envelope + detail)."""
    detail = JobStateChange.model_json_schema(ref_template="#/$defs/{model}")
    definitions = detail.pop("$defs", {})
    definitions[JobStateChange.__name__] = detail
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/queryall/queryall/docs/events/job-state-change.schema.json",
        "title": DETAIL_TYPE,
        "type": "object",
        "required": ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"],
        "properties": {
            "version": {"type": "string"},
            "id": {"type": "string", "description": "EventBridge's id; differs between duplicates."},
            "detail-type": {"const": DETAIL_TYPE},
            "source": {"const": EVENT_SOURCE},
            "account": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "region": {"type": "string"},
            "resources": {"type": "array", "items": {"type": "string"}},
            "detail": {"$ref": f"#/$defs/{JobStateChange.__name__}"},
        },
        "$defs": definitions,
    }
