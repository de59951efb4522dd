"""`queryall local put-event FILE` and `queryall local send-message FILE`: the job made, or the DLQ reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_local_stack import cli

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from queryall_local.seed import seed_tenants

    directory = tmp_path_factory.mktemp("tenants")
    seed_tenants(directory, 3)
    return directory


def test_put_event_prints_the_job_it_made(tenants: Path, tmp_path: Path) -> None:
    result = cli("local", "put-event", str(ROOT / "events" / "submit_eventbridge.json"), "--tenants-dir",
                 str(tenants), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(json.loads(result.stdout)) == {"job_id"}


def test_send_message_prints_the_dead_letter_reason(tenants: Path, tmp_path: Path) -> None:
    message = tmp_path / "message.json"
    message.write_text(json.dumps({"sql": "UPDATE person SET name = 'x'"}))
    result = cli("local", "send-message", str(message), "--tenants-dir", str(tenants), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    letter = json.loads(result.stdout)["dead_letter"]
    assert letter["error_code"] == "invalid_sql" and letter["submit_source"] == "sqs"
    assert "read-only SELECT" in letter["error_message"]
