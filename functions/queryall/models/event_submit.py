"""A submit that arrives as an event (direct invocation, EventBridge, SQS) instead of an HTTP request."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from queryall.models.api import SubmitRequest

# EventBridge's detail-type of a submit, matched by the template's rule.
SUBMIT_DETAIL_TYPE = "Query-All Submit"


class EventSubmit(SubmitRequest):
    """The HTTP body (same fields, same rules: it is a SubmitRequest), plus what only an event needs."""

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        None, description="The same key again submits no second job (see README, Submitting by event).",
    )
    reply_to: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = Field(
        None, description="Recorded on the job for whoever consumes its state-change events.",
    )
