"""Submits by event on the local stack: a direct invocation, an EventBridge event, an SQS message each make
the job an HTTP submit makes; refused input lands in the dead-letter queue with its reason."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.conftest import Api

pytestmark = pytest.mark.timeout(240)

FUNCTION = "EventSubmitFunction"
# What differs between two submits of one body: identity, times, the owner (an event's is the configured one).
PER_JOB = {"job_id", "owner", "created_at", "submitted_at", "expires_at", "finished_at", "execution_arn", "meta"}


def _item(stack, job_id: str) -> dict:
    item = stack.client("dynamodb").get_item(TableName=stack.dynamodb_table_name, Key={"job_id": {"S": job_id}},
                                             ConsistentRead=True).get("Item")
    assert item is not None, f"no job item {job_id}"
    return {key: TypeDeserializer().deserialize(value) for key, value in item.items()}


def _finished(stack, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = _item(stack, job_id)
        if item["status"] != "processing":
            return item
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still processing")


def _comparable(item: dict) -> dict:
    meta = json.loads(item["meta"]) if "meta" in item else None
    if meta is not None:
        meta.pop("execution_time_seconds", None)
    rows = item.get("rows_bz2")
    return {**{key: value for key, value in item.items() if key not in PER_JOB | {"rows_bz2"}},
            "meta": meta, "rows_bz2": bytes(rows.value) if rows is not None else None}


def _owner(stack) -> str:
    return stack.spec.parameters["EventSubmitOwner"]


def _invoke(stack, event: object) -> dict:
    client = boto3.client("lambda", endpoint_url=stack.moto_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    answer = client.invoke(FunctionName=FUNCTION, Payload=json.dumps(event).encode())
    assert "FunctionError" not in answer, answer["Payload"].read()
    return json.loads(answer["Payload"].read())


def _assert_same_job_as_http(stack, api: Api, body: dict, event_job_id: str) -> None:
    http_job = _finished(stack, api.submit(body))
    event_job = _finished(stack, event_job_id)
    assert event_job["owner"] == _owner(stack)
    assert event_job["status"] == "completed", event_job.get("error_message")
    assert _comparable(event_job) == _comparable(http_job)


@pytest.fixture()
def dead_letters(local_stack):
    from queryall_local.submits import take_dead_letters

    take_dead_letters(local_stack)  # none left by an earlier test
    return lambda: take_dead_letters(local_stack)


def _marked(sql_prefix: str = "SELECT count(*) AS people") -> dict:
    # A body no other test submits, so its jobs are told apart from theirs.
    return {"sql": f"{sql_prefix}, '{uuid.uuid4().hex}' AS marker FROM person", "limit": 5}


def test_direct_invocation_makes_the_job_an_http_submit_makes(local_stack, api: Api) -> None:
    body = {**_marked(), "timeout_seconds": 120}  # the job deadline's settings are the HTTP submit's too
    answer = _invoke(local_stack, body)
    assert set(answer) == {"data"} and answer["data"]["status"] == "processing"
    _assert_same_job_as_http(local_stack, api, body, answer["data"]["job_id"])


def test_eventbridge_submit_makes_the_job_an_http_submit_makes(local_stack, api: Api) -> None:
    from queryall_local.submits import put_event

    body = _marked()
    outcome = put_event(local_stack, {"Source": "com.example.reports", "DetailType": "Query-All Submit",
                                      "Detail": {**body, "idempotency_key": "k-1", "reply_to": "arn:reply"}})
    assert set(outcome) == {"job_id"}, outcome
    assert _item(local_stack, outcome["job_id"])["reply_to"] == "arn:reply"
    event_job = _finished(local_stack, outcome["job_id"])
    http_job = _finished(local_stack, api.submit(body))
    assert _comparable({k: v for k, v in event_job.items() if k != "reply_to"}) == _comparable(http_job)


def test_an_idempotency_key_makes_one_job_and_refuses_another_body(local_stack, dead_letters) -> None:
    from queryall_local.submits import put_event, send_message

    body = {**_marked(), "idempotency_key": f"nightly-{uuid.uuid4().hex}"}
    first = put_event(local_stack, {"Source": "s", "DetailType": "Query-All Submit", "Detail": body})
    again = _invoke(local_stack, body)
    assert again["data"]["job_id"] == first["job_id"]
    assert send_message(local_stack, json.dumps(body)) == {"error": "no job was made and nothing reached the "
                                                                    "dead-letter queue (see the log)"}
    assert len(_jobs_with_sql(local_stack, {body["sql"]})) == 1
    other = put_event(local_stack, {"Source": "s", "DetailType": "Query-All Submit",
                                    "Detail": {**body, "limit": 6}})
    assert other["dead_letter"]["error_code"] == "conflict", other
    assert dead_letters() == []


def test_an_event_of_another_detail_type_submits_nothing(local_stack, dead_letters) -> None:
    from queryall_local.submits import put_event

    outcome = put_event(local_stack, {"Source": "x", "DetailType": "Something Else", "Detail": _marked()})
    assert "job_id" not in outcome and "dead_letter" not in outcome
    assert dead_letters() == []


def test_sqs_submit_makes_the_job_an_http_submit_makes(local_stack, api: Api) -> None:
    from queryall_local.submits import send_message

    body = _marked()
    outcome = send_message(local_stack, json.dumps(body))
    assert set(outcome) == {"job_id"}, outcome
    _assert_same_job_as_http(local_stack, api, body, outcome["job_id"])


@pytest.mark.parametrize(("body", "code", "message"), [
    ({"sql": "DELETE FROM person"}, "invalid_sql", "read-only SELECT"),
    ({"limit": 5}, "invalid_request", "exactly one of 'sql' or 'question'"),
    ({"sql": "SELECT 1", "colour": "red"}, "invalid_request", "colour"),
    ({"sql": "SELECT 1", "limit": 0}, "invalid_request", "limit"),
    ({"sql": "SELECT 1 FROM nowhere_at_all", "table": "nowhere_at_all"}, "not_found", "Unknown table"),
])
def test_refused_submits_land_in_the_dead_letter_queue_with_their_reason(
    local_stack, api: Api, dead_letters, body: dict, code: str, message: str
) -> None:
    from queryall_local.submits import put_event, send_message

    http = api.request("POST", "/query-all", body)  # the same refusal as over HTTP
    assert http.body["error"]["code"] == code and message in http.body["error"]["message"]

    answer = _invoke(local_stack, body)
    assert answer["error"]["code"] == code and message in answer["error"]["message"]
    [letter] = dead_letters()
    assert (letter["submit_source"], letter["error_code"]) == ("invoke", code)
    assert message in letter["error_message"] and json.loads(letter["body"]) == body

    outcome = put_event(local_stack, {"Source": "s", "DetailType": "Query-All Submit", "Detail": body})
    assert outcome["dead_letter"]["error_code"] == code, outcome
    assert outcome["dead_letter"]["submit_source"] == "eventbridge"
    assert message in outcome["dead_letter"]["error_message"]

    outcome = send_message(local_stack, json.dumps(body))
    assert outcome["dead_letter"] == {"error_code": code, "error_message": outcome["dead_letter"]["error_message"],
                                      "submit_source": "sqs"}
    assert message in outcome["dead_letter"]["error_message"]
    assert dead_letters() == []  # each one once


def test_a_message_that_is_not_json_is_dead_lettered_as_it_was_sent(local_stack, dead_letters) -> None:
    from queryall_local.submits import send_message

    outcome = send_message(local_stack, "SELECT 1 -- not JSON")
    assert outcome == {"dead_letter": {"error_code": "invalid_request", "error_message": "Message body is not "
                                       "valid JSON", "submit_source": "sqs"}}


def test_one_bad_message_never_fails_its_batch(local_stack, dead_letters) -> None:
    from queryall_local.submits import SUBMIT_QUEUE

    sqs = local_stack.client("sqs")
    queue = local_stack.spec.queues[SUBMIT_QUEUE]
    bodies = [_marked(), {"sql": "DROP TABLE person"}, _marked()]
    sent = sqs.send_message_batch(QueueUrl=queue.url, Entries=[
        {"Id": str(index), "MessageBody": json.dumps(body)} for index, body in enumerate(bodies)])["Successful"]
    poller = local_stack.queue_pollers.pollers[queue.name]
    for message in sent:
        assert poller.wait_for(message["MessageId"], 60)
    local_stack.runtime.wait_for_background(timeout=60)
    made = _jobs_with_sql(local_stack, {bodies[0]["sql"], bodies[2]["sql"]})
    assert len(made) == 2 and all(_finished(local_stack, job_id)["status"] == "completed" for job_id in made)
    [letter] = dead_letters()
    assert letter["error_code"] == "invalid_sql" and json.loads(letter["body"]) == bodies[1]
    attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"  # nothing left to be retried


def test_a_batch_reports_only_the_message_that_failed_for_a_passing_reason(local_stack, monkeypatch) -> None:
    from queryall.errors import ServiceUnavailable
    from queryall.handlers import event_submit

    submit = event_submit._submit
    unavailable = _marked()

    def flaky(request, context=None):
        if request.sql == unavailable["sql"]:
            raise ServiceUnavailable("SQL validation is unavailable; try again")
        return submit(request, context)

    monkeypatch.setattr(event_submit, "_submit", flaky)
    good = _marked()
    records = [{"messageId": f"m{index}", "receiptHandle": f"r{index}", "body": json.dumps(body),
                "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": local_stack.spec.queues["SubmitQueue"].arn, "awsRegion": "us-east-1"}
               for index, body in enumerate([good, unavailable])]
    answer = local_stack.runtime.invoke(FUNCTION, {"Records": records})
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert len(_jobs_with_sql(local_stack, {good["sql"]})) == 1


def _jobs_with_sql(stack, sqls: set[str]) -> list[str]:
    pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.dynamodb_table_name)
    found = []
    for page in pages:
        for raw in page["Items"]:
            item = {key: TypeDeserializer().deserialize(value) for key, value in raw.items()}
            if (item.get("request") or {}).get("sql") in sqls:
                found.append(item["job_id"])
    return found
