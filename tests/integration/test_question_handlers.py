"""The question-mode functions on their sample events, in the local stack (no generator configured there)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import API_KEY


def test_generate_sql_without_a_generator_returns_the_failure_for_the_state_machine(local_stack) -> None:
    event = json.loads(Path("events/generate_sql.json").read_text())
    state = local_stack.runtime.invoke("GenerateSqlFunction", event)
    assert state["generation_error"] == "Could not generate SQL: no SQL generator is configured (set SqlGenerator)"
    assert {k: v for k, v in state.items() if k != "generation_error"} == event


def test_sql_preview_without_a_generator_is_422_generation_failed(local_stack) -> None:
    event = json.loads(Path("events/sql_preview.json").read_text())
    event["headers"]["x-api-key"] = API_KEY
    response = local_stack.runtime.invoke("SqlPreviewFunction", event)
    assert response["statusCode"] == 422
    assert json.loads(response["body"]) == {"error": {"code": "generation_failed", "message": (
        "Could not generate SQL: no SQL generator is configured (set SqlGenerator)")}}
