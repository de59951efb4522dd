"""Driving the event submit paths of a local stack: `queryall local put-event` and `send-message`.

Each puts its input where the deployed stack takes it (the EventBridge bus, the SQS queue), lets the local
stack deliver it (the rule's Lambda target, the queue's poller), and reports what came of it: the job made,
or the dead letter with the reason it was refused.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stack import LocalStack

SUBMIT_DETAIL_TYPE = "Query-All Submit"
DEAD_LETTER_QUEUE = "SubmitDeadLetterQueue"
SUBMIT_QUEUE = "SubmitQueue"


def put_events_entry(event: dict[str, Any], bus: str) -> dict[str, Any]:
    """A PutEvents entry from ``event``: an entry already (``DetailType``), an EventBridge envelope as a
    target receives it (``detail-type``; the sample in events/), or just the detail (the submit body)."""
    if "DetailType" in event:
        entry = dict(event)
        if not isinstance(entry.get("Detail"), str):
            entry["Detail"] = json.dumps(entry.get("Detail", {}))
        entry.setdefault("EventBusName", bus)
        entry.setdefault("Source", "queryall.local")
        return entry
    if "detail-type" in event:
        return {"Source": event.get("source", "queryall.local"), "DetailType": event["detail-type"],
                "Detail": json.dumps(event.get("detail", {})), "EventBusName": bus}
    return {"Source": "queryall.local", "DetailType": SUBMIT_DETAIL_TYPE, "Detail": json.dumps(event),
            "EventBusName": bus}


def take_dead_letters(stack: LocalStack) -> list[dict[str, Any]]:
    """Every message now in the submit dead-letter queue, removed from it: body and reason attributes."""
    sqs = stack.client("sqs")
    url = stack.spec.queues[DEAD_LETTER_QUEUE].url
    letters: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                       VisibilityTimeout=30).get("Messages", [])
        if not messages:
            return letters
        for message in messages:
            attributes = {name: value.get("StringValue") for name, value in
                          (message.get("MessageAttributes") or {}).items()}
            letters.append({"body": message["Body"], **attributes})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _job_ids(stack: LocalStack) -> set[str]:
    pages = stack.client("dynamodb").get_paginator("scan").paginate(
        TableName=stack.dynamodb_table_name, ProjectionExpression="job_id")
    return {item["job_id"]["S"] for page in pages for item in page["Items"]}


def _outcome(stack: LocalStack, jobs_before: set[str], refused: list[dict[str, Any]]) -> dict[str, Any]:
    made = sorted(_job_ids(stack) - jobs_before)
    if made:
        return {"job_id": made[0]} if len(made) == 1 else {"job_ids": made}
    if refused:
        letter = refused[-1]
        return {"dead_letter": {key: letter.get(key) for key in ("error_code", "error_message", "submit_source")}}
    return {"error": "no job was made and nothing reached the dead-letter queue (see the log)"}


def put_event(stack: LocalStack, event: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Put ``event`` on the submit bus; the rule's target runs; the job made or the dead letter."""
    bus = stack.spec.event_rules[0].bus if stack.spec.event_rules else "default"
    jobs_before = _job_ids(stack)
    entry = put_events_entry(event, bus)
    answer = stack.client("events").put_events(Entries=[entry])
    if answer.get("FailedEntryCount"):
        return {"error": f"PutEvents refused the event: {answer['Entries'][0]}"}
    event_id = answer["Entries"][0]["EventId"]
    stack.runtime.wait_for_background(timeout=timeout)  # the rule's target is an asynchronous invocation
    refused = [letter for letter in take_dead_letters(stack) if _event_id(letter["body"]) == event_id]
    return _outcome(stack, jobs_before, refused)


def send_message(stack: LocalStack, body: str, timeout: float = 60.0) -> dict[str, Any]:
    """Send ``body`` to the submit queue; the queue's poller hands it to the function; the job made or
    the dead letter."""
    jobs_before = _job_ids(stack)
    message_id = stack.client("sqs").send_message(QueueUrl=stack.spec.queues[SUBMIT_QUEUE].url,
                                                  MessageBody=body)["MessageId"]
    deadline = time.monotonic() + timeout
    poller = stack.queue_pollers.pollers[stack.spec.queues[SUBMIT_QUEUE].name]
    if not poller.wait_for(message_id, timeout):
        return {"error": f"message {message_id} was not handled within {timeout:g} s"}
    stack.runtime.wait_for_background(timeout=max(0.0, deadline - time.monotonic()))
    refused = [letter for letter in take_dead_letters(stack) if letter["body"] == body]
    return _outcome(stack, jobs_before, refused)


def _event_id(body: str) -> str | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value.get("id") if isinstance(value, dict) else None
