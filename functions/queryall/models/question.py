"""Question mode's own bodies: the SQL preview route (POST /query-all/sql)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from queryall.models.api import BucketId, TableName

MAX_QUESTION_CHARS = 2_000


class SqlPreviewRequest(BaseModel):
    """POST /query-all/sql body: the question and the targets it would run on."""

    model_config = ConfigDict(extra="forbid")

    question: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUESTION_CHARS)] = Field(
        description="A natural-language question.", examples=["total payments by currency for january"],
    )
    buckets: Annotated[list[BucketId], Field(min_length=1, max_length=10_000)] | None = Field(
        None, description="Only these tenants' schema is shown to the generator (default: every tenant).",
    )
    table: TableName | None = Field(None, description="Only this table is shown to the generator.")


class GeneratedSqlPreview(BaseModel):
    sql: str = Field(description="The SQL a job with this question would run on every target database.")
    tables: list[str] = Field(description="The catalog tables the SQL names.")


class SqlPreviewResponse(BaseModel):
    data: GeneratedSqlPreview
