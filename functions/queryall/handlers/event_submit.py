"""Submits by event: a direct invocation whose event is the HTTP body, an EventBridge `Query-All Submit`
event whose detail is, or an SQS batch of messages that each are (partial batch failures reported).

The job's owner is the function's configured owner (EVENT_SUBMIT_OWNER), never anything in the event:
whoever may put an event on the bus or a message on the queue submits as that owner.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from queryall.dal.dead_letters import DeadLetterQueue
from queryall.errors import InvalidRequest
from queryall.handlers.configured_submit import submit_configured
from queryall.handlers.function import function_handler
from queryall.handlers.http_api import describe_validation_error
from queryall.logic import json_input
from queryall.logic.event_submission import SubmitSource, submit_or_dead_letter
from queryall.models.api import SubmitResponse, SubmittedJob
from queryall.models.event_submit import EventSubmit
from queryall.settings import get_settings


def _parse(body: Any) -> EventSubmit:
    try:
        return EventSubmit.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest(describe_validation_error(error)) from None


def _submit(request: EventSubmit, context: LambdaContext | None = None) -> str:
    """The job id of this submit; with an idempotency_key, the one job of (owner, key), as with POST
    /query-all's Idempotency-Key. Event submits query every tenant (no scope) and take no quota: the
    configured owner is a trusted integration, and a bulk submit refused for its rate would be dead-lettered."""
    owner = get_settings().require("event_submit_owner")
    return submit_configured(request, owner, idempotency_key=request.idempotency_key,
                             idempotent_body=request.model_dump(mode="json", exclude={"idempotency_key"}),
                             lambda_context=context, reply_to=request.reply_to)


def _dead_letters() -> DeadLetterQueue:
    return DeadLetterQueue(get_settings().require("submit_dead_letter_queue"))


def _submit_message(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    """One message of a batch; raising reports it as a batch item failure (SQS delivers it again)."""
    submit_or_dead_letter(lambda: _parse(json_input.loads(record.body, "Message body")),
                          lambda request: _submit(request, lambda_context),
                          original=record.body, source=SubmitSource.SQS, dead_letters=_dead_letters())


def _is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and bool(records) and all(
        isinstance(record, dict) and record.get("eventSource") == "aws:sqs" for record in records)


def _is_eventbridge_event(event: Any) -> bool:
    return isinstance(event, dict) and "detail-type" in event and "detail" in event and "source" in event


def _handle(event: Any, context: LambdaContext) -> dict:
    if _is_sqs_batch(event):
        return process_partial_response(event=event, record_handler=_submit_message,
                                        processor=BatchProcessor(event_type=EventType.SQS), context=context)
    source = SubmitSource.EVENTBRIDGE if _is_eventbridge_event(event) else SubmitSource.INVOKE
    body = event["detail"] if source is SubmitSource.EVENTBRIDGE else event
    outcome = submit_or_dead_letter(lambda: _parse(body), lambda request: _submit(request, context),
                                    original=json.dumps(event), source=source, dead_letters=_dead_letters())
    if outcome.job_id is None:
        return {"error": outcome.error.model_dump() if outcome.error else None}
    return SubmitResponse(data=SubmittedJob(job_id=outcome.job_id)).model_dump()  # POST /query-all's 202 body


handler = function_handler(_handle, settings=(
    "jobs_table", "state_machine_arn", "sql_guard_function", "results_bucket", "event_submit_owner",
    "submit_dead_letter_queue", "idempotency_table"))
