"""Inputs and outputs of the state machine's steps (all small: Step Functions caps payloads at 256 KB).

The execution's own input, `ExecutionInput`, is in `models.execution`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

# Seconds between a batch's progress writes when few batches run at once (`logic.progress`), and the
# longest interval a batch accepts.
MIN_PROGRESS_INTERVAL_SECONDS = 0.2
MAX_PROGRESS_INTERVAL_SECONDS = 60.0


class Batch(BaseModel):
    batch_index: int
    buckets: list[str]


class Plan(BaseModel):
    batches: list[Batch]
    max_concurrency: int
    databases_total: int
    # Requested buckets that have no database: reported as errors, never queried.
    missing: dict[str, str] = Field(default_factory=dict)
    # Tenants the catalog shows lacking the job's `table`: reported as skipped, never opened.
    skipped: dict[str, str] = Field(default_factory=dict)
    # "distributed": too many targets for the state (256 KB) and one inline Map; `batches` stays empty
    # and the targets are MapItems in S3 (items_bucket/items_key), read by a distributed Map.
    mode: Literal["inline", "distributed"] = "inline"
    batch_size: int | None = None
    # How often each batch adds its finished tenants to the job item: longer when many batches run at
    # once, so that the one item is not written more than a few dozen times a second.
    progress_interval_seconds: float = MIN_PROGRESS_INTERVAL_SECONDS
    items_bucket: str | None = None
    items_key: str | None = None
    # Thousands of missing or skipped tenants (with their messages) would not fit the state: they are then
    # in S3 (plan-reports.json, `logic.distribution`), `missing` and `skipped` stay empty here, and
    # `missing_count` still says how many are missing.
    reports_stored: bool = False
    missing_count: int | None = None

    @model_validator(mode="after")
    def _count_missing(self) -> Plan:
        if self.missing_count is None:
            self.missing_count = len(self.missing)
        return self


class MapItem(BaseModel):
    """One target of a distributed Map: the ItemBatcher groups batch_size of them per QueryBatch."""

    batch_index: int
    bucket: str


class BatchInput(BaseModel):
    job_id: str
    sql: str
    limit: int
    table: str | None = None
    batch: Batch
    progress_interval_seconds: float = Field(default=MIN_PROGRESS_INTERVAL_SECONDS, gt=0,
                                             le=MAX_PROGRESS_INTERVAL_SECONDS)
    # The job's deadline (epoch seconds, submitted_at + timeout_seconds): past it the batch starts no
    # tenant and stops the running one (`worker_supervisor`). None: no deadline.
    deadline: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_item_batcher(cls, data: Any) -> Any:
        """A distributed Map's ItemBatcher sends {"Items": [MapItem…], "BatchInput": {job fields}}; the
        inline Map sends the job fields with `batch`. Both become the same BatchInput."""
        if not isinstance(data, dict) or "Items" not in data:
            return data
        items = [MapItem.model_validate(item) for item in data["Items"]]
        indexes = {item.batch_index for item in items}
        if len(indexes) != 1:
            raise ValueError(f"an ItemBatcher batch must hold one planned batch, got batch indexes {sorted(indexes)}")
        return {**data.get("BatchInput", {}),
                "batch": {"batch_index": indexes.pop(), "buckets": [item.bucket for item in items]}}


# The error of every tenant the job's deadline left unqueried or stopped; the aggregator counts them
# into meta.deadline_exceeded.
DEADLINE_EXCEEDED = "Job deadline exceeded"


class TenantOutcome(BaseModel):
    bucket: str
    status: Literal["ok", "skipped", "error"]
    rows: int = 0
    duration_ms: float = 0.0
    message: str | None = None


class BatchSummary(BaseModel):
    """Written to S3 next to the batch's partial results; the aggregator reads it."""

    batch_index: int
    outcomes: list[TenantOutcome]
    partial_keys: list[str]


class BatchResult(BaseModel):
    """What a batch returns through the Map: counts only."""

    batch_index: int
    databases: int
    rows: int


class StepError(BaseModel):
    """The Error/Cause pair a Catch records."""

    Error: str = "States.Unknown"
    Cause: str | None = None


class BatchOutcome(BaseModel):
    batch_index: int
    error: StepError | None = None


class AggregateInput(BaseModel):
    job_id: str
    submitted_at: float
    plan: Plan
    batch_outcomes: list[BatchOutcome]


class FailJobInput(BaseModel):
    job_id: str
    error_code: str = "internal_error"
    error_message: str | None = None
    error: StepError | None = None
