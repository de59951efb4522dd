"""Question mode end to end: `queryall local serve --sql-generator openai --sql-generator-url …
--sql-generator-model …` pointed at a fake OpenAI-compatible server, over HTTP.

The stack runs as its own process (the command a user runs; one local stack per process, and the other
end-to-end tests share theirs). Its log lines (stdout) show which steps ran for which job, so "no tenant
was queried" is checked as "the job was never planned".
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from queryall.models.results import CompletedJobResponse, JobStateResponse
from tests.conftest import Api
from tests.fake_sql_generator import GOOD_SQL, FakeSqlGenerator

ROOT = Path(__file__).resolve().parents[2]
QUERYALL = str(Path(sys.executable).parent / "queryall")
API_KEY = "question-test-key"
TENANTS = 8
TIMEOUT_SECONDS = 2


class ServedStack:
    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process = process
        self.url = url
        self.lines: list[str] = []

    def drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def planned(self, job_id: str) -> bool:
        return any('"message":"planned"' in line and job_id in line for line in list(self.lines))


@pytest.fixture(scope="module")
def generator() -> Iterator[FakeSqlGenerator]:
    with FakeSqlGenerator(slow_seconds=TIMEOUT_SECONDS + 5) as fake:
        yield fake


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, generator: FakeSqlGenerator) -> Iterator[ServedStack]:
    from queryall_local.seed import seed_tenants

    tenants = tmp_path_factory.mktemp("question-tenants")
    seed_tenants(tenants, TENANTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    process = subprocess.Popen(
        [QUERYALL, "local", "serve", "--tenants-dir", str(tenants), "--port", "0", "--api-key", API_KEY,
         "--sql-generator", "openai", "--sql-generator-url", generator.url, "--sql-generator-model", "fake-sql-1",
         "--sql-generator-api-key", "sk-local-secret", "--sql-generator-timeout", str(TIMEOUT_SECONDS)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "queryall local serve ended before it was ready"
            if "local stack ready at " in line:
                url = line.split("local stack ready at ", 1)[1].split()[0]
        assert url is not None
        stack = ServedStack(process, url)
        threading.Thread(target=stack.drain, daemon=True).start()
        api = Api(url, API_KEY)
        while time.monotonic() < deadline:  # the catalog is refreshed when the stack starts
            if api.request("GET", "/query-all/databases?limit=100").body.get("meta", {}).get("refreshed_at"):
                break
            time.sleep(0.1)
        yield stack
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def api(served: ServedStack) -> Api:
    return Api(served.url, API_KEY)


def test_a_question_completes_with_its_sql_and_the_same_rows_as_that_sql(api: Api, served: ServedStack) -> None:
    job_id = api.submit({"question": "how many people does each tenant have?"})
    body = api.wait(job_id)
    CompletedJobResponse.model_validate(body)
    assert body["data"]["sql"] == GOOD_SQL
    direct = api.run({"sql": GOOD_SQL})
    assert "sql" not in direct["data"]  # SQL mode: as before
    assert body["data"]["rows"] == direct["data"]["rows"] and len(body["data"]["rows"]) == TENANTS
    assert body["data"]["columns"] == ["_bucket", "people"]
    jobs = api.request("GET", "/query-all/jobs?limit=5").body["data"]["jobs"]
    listed = next(j for j in jobs if j["job_id"] == job_id)
    assert listed["request"]["question"] == "how many people does each tenant have?"
    assert listed["request"]["sql"] == GOOD_SQL
    waited = api.request("GET", f'/query-all/wait?job_ids=["{job_id}"]').body["data"]["jobs"][0]
    assert waited["data"]["sql"] == GOOD_SQL
    page = api.request("GET", f"/query-all/jobs/{job_id}/results?page_size=2").body
    assert page["data"]["sql"] == GOOD_SQL and len(page["data"]["rows"]) == 2
    arrow = api.request("GET", f"/query-all/jobs/{job_id}?format=arrow").body
    assert arrow["data"]["summary"]["sql"] == GOOD_SQL
    assert served.planned(job_id)


@pytest.mark.parametrize(("question", "reason"), [
    ("please delete everyone", "the generated SQL was refused by the SQL guard: only read-only SELECT"),
    ("count people of the other tenant", "the generated SQL was refused by the SQL guard: table "
                                         "warehouse_other.person names another database"),
    ("two statements please", "the answer held 2 SQL statements, not one"),
    ("nothing useful", "the answer held no SQL"),
    ("refuse it", "the generator refused to answer"),
    ("garbage out", "malformed response from the generator"),
    ("broken generator", "the generator failed (HTTP 500)"),
    ("slow generator", f"timeout (no answer within {TIMEOUT_SECONDS} s)"),
])
def test_each_failure_ends_generation_failed_with_no_tenant_queried(
    api: Api, served: ServedStack, question: str, reason: str
) -> None:
    job_id = api.submit({"question": question})
    body = api.wait(job_id, timeout=60)
    JobStateResponse.model_validate(body)
    data = body["data"]
    assert (data["status"], data["error_code"]) == ("failed", "generation_failed")
    assert data["error_message"].startswith("Could not generate SQL: ") and reason in data["error_message"]
    assert "secret-internal-detail" not in data["error_message"] and "sk-local-secret" not in data["error_message"]
    assert not served.planned(job_id)


def test_the_preview_route(api: Api, generator: FakeSqlGenerator) -> None:
    result = api.request("POST", "/query-all/sql", {"question": "how many people in preview?", "table": "person"})
    assert result.status == 200, result.body
    assert result.body == {"data": {"sql": GOOD_SQL, "tables": ["person"]}}
    assert "TABLE person" in generator.requests["people"]["messages"][1]["content"]
    assert "TABLE payment" not in generator.requests["people"]["messages"][1]["content"]  # narrowed by table
    assert generator.headers["people"]["Authorization"] == "Bearer sk-local-secret"  # the key from SSM

    refused = api.request("POST", "/query-all/sql", {"question": "delete them all"})
    assert refused.status == 422
    assert refused.body["error"]["code"] == "generation_failed"
    assert refused.body["error"]["message"].startswith("Could not generate SQL: the generated SQL was refused")

    for body, code, status in [({"question": "x" * 2001}, "invalid_request", 400),
                               ({"question": "q", "sql": "SELECT 1"}, "invalid_request", 400),
                               ({}, "invalid_request", 400),
                               ({"question": "q", "table": "no_such_table"}, "not_found", 404)]:
        result = api.request("POST", "/query-all/sql", body)
        assert (result.status, result.body["error"]["code"]) == (status, code), result.body
    assert api.request("POST", "/query-all/sql", {"question": "q"}, api_key="wrong").status == 401
    too_long = api.request("POST", "/query-all", {"question": "x" * 2001})
    assert too_long.status == 400 and too_long.body["error"]["code"] == "invalid_request"
    assert "question" in too_long.body["error"]["message"]


def test_the_same_question_reuses_its_sql(api: Api, generator: FakeSqlGenerator) -> None:
    question = f"how many people, cache check {uuid.uuid4()}"
    before = generator.calls["people"]
    first = api.run({"question": question})
    second = api.run({"question": question})
    preview = api.request("POST", "/query-all/sql", {"question": question})
    assert first["data"]["sql"] == second["data"]["sql"] == preview.body["data"]["sql"] == GOOD_SQL
    assert generator.calls["people"] - before == 1
    # Other targets show the generator another schema: asked again.
    api.run({"question": question, "table": "person"})
    assert generator.calls["people"] - before == 2


def test_the_client_shows_the_sql(api: Api) -> None:
    env = {**os.environ, "QUERYALL_API_URL": api.base_url, "QUERYALL_API_KEY": API_KEY}
    shown = subprocess.run([QUERYALL, "query", "--question", "how many people? (client)", "--show-sql"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == GOOD_SQL + "\n" and "submitted" not in shown.stderr
    ran = subprocess.run([QUERYALL, "query", "--question", "how many people? (client)", "--format", "csv"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert f"SQL: {GOOD_SQL}" in ran.stderr
    assert ran.stdout.splitlines()[0] == "_bucket,people" and len(ran.stdout.splitlines()) == TENANTS + 1
    failed = subprocess.run([QUERYALL, "query", "--question", "delete them", "--show-sql"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "Could not generate SQL: the generated SQL was refused" in failed.stderr
