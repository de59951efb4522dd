"""Inputs and outputs of the state machine's steps (all small: Step Functions caps payloads at 256 KB)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ExecutionInput(BaseModel):
    job_id: str
    submitted_at: float
    sql: str | None = None
    question: str | None = None
    buckets: list[str] | None = None
    limit: int
    table: str | None = None


class Batch(BaseModel):
    batch_index: int
    buckets: list[str]


class Plan(BaseModel):
    batches: list[Batch]
    max_concurrency: int
    databases_total: int
    # Requested buckets that have no database: reported as errors, never queried.
    missing: dict[str, str] = Field(default_factory=dict)


class BatchInput(BaseModel):
    job_id: str
    sql: str
    limit: int
    table: str | None = None
    batch: Batch


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
