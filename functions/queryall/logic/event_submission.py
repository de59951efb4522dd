"""Submits that arrive as events: the job an HTTP submit would make, or a dead letter with its reason.

A submit that can never become a job (a 4xx on the HTTP path: invalid body, invalid SQL, unknown table)
is kept in the dead-letter queue with the reason, logged and counted; nothing is dropped. A submit that
failed for a passing reason (a 503 or 429: the guard or DynamoDB unavailable) is raised instead, so the event
source retries it (SQS redelivers the message, Lambda retries an asynchronous invocation) and only then
dead-letters it (the queue's redrive policy, the function's dead-letter queue).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel

from queryall.dal.dead_letters import DeadLetterQueue
from queryall.errors import QueryAllError
from queryall.models.api import ErrorDetail
from queryall.models.event_submit import EventSubmit
from queryall.observability import logger, metrics


class SubmitSource(StrEnum):
    INVOKE = "invoke"
    EVENTBRIDGE = "eventbridge"
    SQS = "sqs"


class SubmitOutcome(BaseModel):
    """The job made, or why none was (the input is then in the dead-letter queue)."""

    job_id: str | None = None
    error: ErrorDetail | None = None


def submit_or_dead_letter(
    parse: Callable[[], EventSubmit],
    submit: Callable[[EventSubmit], str],
    *,
    original: str,
    source: SubmitSource,
    dead_letters: DeadLetterQueue,
) -> SubmitOutcome:
    """``submit(parse())`` (a job id); a refused submit goes to ``dead_letters`` as ``original`` with the
    reason."""
    try:
        job_id = submit(parse())
    except QueryAllError as error:
        if error.status_code >= 500 or error.status_code == 429:
            raise  # passing: the event source retries it
        logger.warning("event submit refused", extra={"submit_source": source.value, "error_code": error.code,
                                                      "error_message": error.message})
        dead_letters.send(original, source=source.value, error_code=error.code, error_message=error.message)
        metrics.add_metric(name="SubmitsDeadLettered", unit="Count", value=1)
        return SubmitOutcome(error=ErrorDetail(code=error.code, message=error.message))
    return SubmitOutcome(job_id=job_id)
