"""The job deadline a submit asks for, against the deployment's default and maximum."""

from __future__ import annotations

from typing import Any

import pytest

from queryall.errors import InvalidRequest
from queryall.logic.submission import submit_job
from queryall.models.api import SubmitRequest
from queryall.models.execution import ExecutionInput


class _Recorder:
    """Stands in for the stores: records what was written and started."""

    def __init__(self) -> None:
        self.created: list[Any] = []
        self.started: list[ExecutionInput] = []

    def create(self, job: Any) -> None:
        self.created.append(job)

    def start(self, execution: ExecutionInput) -> str:
        self.started.append(execution)
        return "arn"

    def check(self, sql: str) -> dict:
        return {"ok": True, "sql": sql}


def _submit(body: dict, **limits: int) -> _Recorder:
    recorder = _Recorder()
    submit_job(SubmitRequest(**body), "owner", jobs=recorder, workflow=recorder, sql_guard=recorder,  # type: ignore[arg-type]
               now=1000.0, ttl_seconds=3600, **limits)
    return recorder


def test_the_default_deadline_is_the_deployment_s() -> None:
    recorder = _submit({"sql": "SELECT 1"}, default_timeout_seconds=120, max_timeout_seconds=600)
    assert recorder.created[0].request.timeout_seconds == 120
    assert recorder.started[0].deadline == 1120.0


def test_a_requested_deadline_within_the_maximum_is_kept() -> None:
    recorder = _submit({"sql": "SELECT 1", "timeout_seconds": 600}, default_timeout_seconds=120,
                       max_timeout_seconds=600)
    assert recorder.started[0].deadline == 1600.0


def test_a_deadline_past_the_deployment_s_maximum_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="timeout_seconds: at most 60 seconds, got 61"):
        _submit({"sql": "SELECT 1", "timeout_seconds": 61}, max_timeout_seconds=60)
