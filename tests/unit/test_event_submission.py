"""Event submits' rules with a fake dead-letter queue: refused input is kept with its reason and counted,
a passing failure is raised for the event source to retry, a job made is reported."""

from __future__ import annotations

import pytest

from queryall.errors import InvalidSql, NotFound, ServiceUnavailable
from queryall.logic.event_submission import SubmitSource, submit_or_dead_letter
from queryall.models.event_submit import EventSubmit
from queryall.observability import metrics


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, body: str, **reason: str) -> None:
        self.sent.append({"body": body, **reason})


def _raise(error: Exception):
    def submit(request: EventSubmit) -> str:
        raise error

    return submit


@pytest.fixture(autouse=True)
def _fresh_metrics():
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def test_a_job_made_is_reported_and_nothing_dead_lettered() -> None:
    letters = FakeDeadLetters()
    outcome = submit_or_dead_letter(lambda: EventSubmit(sql="SELECT 1"), lambda request: "j-1", original="{}",
                                    source=SubmitSource.INVOKE, dead_letters=letters)
    assert outcome.job_id == "j-1" and outcome.error is None and letters.sent == []


@pytest.mark.parametrize("error", [InvalidSql("only SELECT"), NotFound("Unknown table: t")])
def test_refused_input_is_dead_lettered_with_its_reason_and_counted(error: Exception) -> None:
    letters = FakeDeadLetters()
    outcome = submit_or_dead_letter(lambda: EventSubmit(sql="SELECT 1"), _raise(error), original='{"sql": "x"}',
                                    source=SubmitSource.EVENTBRIDGE, dead_letters=letters)
    assert outcome.error is not None and outcome.job_id is None
    assert (outcome.error.code, outcome.error.message) == (error.code, error.message)
    assert letters.sent == [{"body": '{"sql": "x"}', "source": "eventbridge", "error_code": error.code,
                             "error_message": error.message}]
    assert metrics.metric_set["SubmitsDeadLettered"]["Value"] == [1.0]


def test_a_parse_error_is_refused_input_too() -> None:
    from queryall.errors import InvalidRequest

    def parse() -> EventSubmit:
        raise InvalidRequest("Message body is not valid JSON")

    letters = FakeDeadLetters()
    outcome = submit_or_dead_letter(parse, lambda request: "j-1", original="nope", source=SubmitSource.SQS,
                                    dead_letters=letters)
    assert outcome.error is not None and outcome.error.code == "invalid_request"
    assert letters.sent[0]["source"] == "sqs" and letters.sent[0]["body"] == "nope"


def test_a_passing_failure_is_raised_for_the_source_to_retry() -> None:
    letters = FakeDeadLetters()
    with pytest.raises(ServiceUnavailable):
        submit_or_dead_letter(lambda: EventSubmit(sql="SELECT 1"), _raise(ServiceUnavailable("try again")),
                              original="{}", source=SubmitSource.SQS, dead_letters=letters)
    assert letters.sent == [] and "SubmitsDeadLettered" not in metrics.metric_set


def test_the_event_body_follows_the_http_body_rules() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one of"):
        EventSubmit.model_validate({"limit": 5, "reply_to": "arn:x"})
    with pytest.raises(ValidationError, match="extra"):
        EventSubmit.model_validate({"sql": "SELECT 1", "owner": "someone-else"})  # no owner from the event
    assert EventSubmit.model_validate({"sql": "SELECT 1", "idempotency_key": "k"}).idempotency_key == "k"
