"""Jobs always end (issue 15): an execution stopped from outside, a job past the maximum job time, and the
job deadline with partial results, over real HTTP against the local stack running the real state machine."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from queryall.settings import Settings
from tests.conftest import Api
from tests.e2e.stack_jobs import buckets, job_item, slow_sql

pytestmark = pytest.mark.timeout(180)

MAX_JOB_SECONDS = Settings().max_job_seconds


def execution_status(local_stack, job_id: str, timeout: float = 60.0) -> str:
    """The job's execution status once it is no longer running."""
    arn = local_stack.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + job_id
    sfn = local_stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, "execution still running"
        time.sleep(0.05)
    local_stack.runtime.wait_for_background(timeout=30)  # the rule's target has run
    return status


def planned(api: Api, job_id: str) -> None:
    """Wait until the job's execution is under way (its plan made): moto cannot stop an execution whose
    interpreter thread has not set up yet."""
    deadline = time.monotonic() + 30
    while api.request("GET", f"/query-all/jobs/{job_id}").body["data"]["progress"]["databases_total"] is None:
        assert time.monotonic() < deadline, "job never planned"
        time.sleep(0.05)


def test_an_execution_stopped_from_outside_ends_the_job_failed_execution_aborted(api: Api, local_stack,
                                                                                 tenants_dir: Path) -> None:
    job_id = api.submit({"sql": slow_sql(30_000_000), "buckets": buckets(tenants_dir, 2)})
    arn = local_stack.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + job_id
    planned(api, job_id)
    local_stack.client("stepfunctions").stop_execution(executionArn=arn, error="Ops", cause="stopped by hand")
    assert execution_status(local_stack, job_id) == "ABORTED"
    body = api.wait(job_id, timeout=60)
    assert body["data"]["status"] == "failed", body
    assert body["data"]["error_code"] == "execution_aborted"
    assert "stopped before the job finished" in body["data"]["error_message"]


def test_a_cancelled_job_stays_cancelled_when_its_aborted_execution_is_reported(api: Api, local_stack,
                                                                               tenants_dir: Path) -> None:
    job_id = api.submit({"sql": slow_sql(30_000_000), "buckets": buckets(tenants_dir, 2)})
    planned(api, job_id)
    assert api.request("DELETE", f"/query-all/jobs/{job_id}").status == 200
    assert execution_status(local_stack, job_id) == "ABORTED"  # by the cancel's StopExecution
    assert api.request("GET", f"/query-all/jobs/{job_id}").body["data"]["status"] == "cancelled"
    assert "error_code" not in job_item(local_stack, job_id)


def _overdue_job(api: Api, local_stack, tenants_dir: Path) -> str:
    """A job item left processing past the maximum job time, as if its execution ended unseen."""
    job_id = api.submit({"sql": "SELECT 1 AS one", "buckets": buckets(tenants_dir, 1)})
    api.wait(job_id)
    item = local_stack.client("dynamodb").get_item(
        TableName=local_stack.dynamodb_table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True)["Item"]
    stale_id = str(uuid.uuid4())
    submitted = time.time() - MAX_JOB_SECONDS - 5
    stale = {k: v for k, v in item.items() if k in ("owner", "expires_at", "request")}
    stale.update(job_id={"S": stale_id}, status={"S": "processing"}, submitted_at={"N": str(submitted)},
                 created_at={"S": datetime.fromtimestamp(time.time()).isoformat() + "Z"})
    local_stack.client("dynamodb").put_item(TableName=local_stack.dynamodb_table_name, Item=stale)
    return stale_id


def _assert_written_back_once(local_stack, job_id: str, first_finished_at: str | None = None) -> str:
    item = job_item(local_stack, job_id)
    assert (item["status"], item["error_code"]) == ("failed", "execution_timed_out")
    if first_finished_at is not None:
        assert item["finished_at"] == first_finished_at  # the second read wrote nothing
    return item["finished_at"]


def test_poll_reports_a_job_past_the_maximum_time_failed_and_writes_it_back_once(api: Api, local_stack,
                                                                                 tenants_dir: Path) -> None:
    job_id = _overdue_job(api, local_stack, tenants_dir)
    body = api.request("GET", f"/query-all/jobs/{job_id}").body
    assert (body["data"]["status"], body["data"]["error_code"]) == ("failed", "execution_timed_out"), body
    finished_at = _assert_written_back_once(local_stack, job_id)
    time.sleep(0.01)
    assert api.request("GET", f"/query-all/jobs/{job_id}").body == body
    _assert_written_back_once(local_stack, job_id, finished_at)


def test_wait_reports_a_job_past_the_maximum_time_failed(api: Api, local_stack, tenants_dir: Path) -> None:
    job_id = _overdue_job(api, local_stack, tenants_dir)
    query = urllib.parse.urlencode({"job_ids": json.dumps([job_id]), "timeout_seconds": 5})
    started = time.monotonic()
    data = api.request("GET", f"/query-all/wait?{query}").body["data"]
    assert time.monotonic() - started < 4  # not held: the job has ended
    [entry] = data["jobs"]
    assert (entry["status"], entry["data"]["error_code"]) == ("failed", "execution_timed_out"), data
    assert data["remaining_job_ids"] == [] and data["timed_out"] is False
    finished_at = _assert_written_back_once(local_stack, job_id)
    api.request("GET", f"/query-all/wait?{query}")
    _assert_written_back_once(local_stack, job_id, finished_at)


def test_the_job_list_reports_a_job_past_the_maximum_time_failed(api: Api, local_stack, tenants_dir: Path) -> None:
    job_id = _overdue_job(api, local_stack, tenants_dir)
    listed = api.request("GET", "/query-all/jobs?limit=100").body["data"]["jobs"]
    [summary] = [job for job in listed if job["job_id"] == job_id]
    assert (summary["status"], summary["error_code"]) == ("failed", "execution_timed_out"), summary
    finished_at = _assert_written_back_once(local_stack, job_id)
    api.request("GET", "/query-all/jobs?limit=100")
    _assert_written_back_once(local_stack, job_id, finished_at)


def test_a_cpu_bound_job_over_many_tenants_completes_at_its_deadline_with_partial_rows(api: Api, local_stack,
                                                                                      tenants_dir: Path) -> None:
    every = buckets(tenants_dir)
    timeout = 6
    submitted = time.time()
    job_id = api.submit({"sql": slow_sql(40_000_000), "buckets": every, "timeout_seconds": timeout})
    body = api.wait(job_id, timeout=60)
    item = job_item(local_stack, job_id)
    finished = datetime.fromisoformat(item["finished_at"].replace("Z", "+00:00")).timestamp()
    assert abs(finished - (float(item["submitted_at"]) + timeout)) <= 2.0, finished - submitted
    meta = body["meta"]
    assert meta["deadline_exceeded"] is True
    assert 0 < meta["total_rows"] < len(every)  # partial: every row it had, not all
    cut = [bucket for bucket, message in meta["errors"].items() if message == "Job deadline exceeded"]
    assert len(cut) + meta["databases_queried"] == len(every), meta["errors"]
    assert {row[0] for row in body["data"]["rows"]} <= set(every) - set(cut)


@pytest.mark.parametrize("value", [0, 901, "10", 1.5])
def test_a_bad_timeout_is_refused(api: Api, value: object) -> None:
    result = api.request("POST", "/query-all", {"sql": "SELECT 1", "timeout_seconds": value})
    assert result.status == 400, result.body
    assert "timeout_seconds" in result.body["error"]["message"]


def test_a_job_within_its_deadline_reports_no_deadline_exceeded(api: Api, tenants_dir: Path) -> None:
    body = api.run({"sql": "SELECT 1 AS one", "buckets": buckets(tenants_dir, 3), "timeout_seconds": 60})
    assert "deadline_exceeded" not in body["meta"] and body["meta"]["total_rows"] == 3


@pytest.mark.parametrize(("status", "error_code"), [("FAILED", "execution_failed"),
                                                    ("TIMED_OUT", "execution_timed_out"),
                                                    ("ABORTED", "execution_aborted")])
def test_the_watchdog_function_fails_a_processing_job_once_and_ignores_other_executions(
        api: Api, local_stack, tenants_dir: Path, status: str, error_code: str) -> None:
    job_id = _overdue_job(api, local_stack, tenants_dir)  # any processing job item will do
    event = json.loads(Path("events/execution_status.json").read_text())
    event["detail"] |= {"name": job_id, "status": status, "error": "States.Runtime", "cause": "boom"}
    assert local_stack.runtime.invoke("ExecutionStatusFunction", event) == {"failed": True}
    item = job_item(local_stack, job_id)
    assert (item["status"], item["error_code"]) == ("failed", error_code)
    assert "States.Runtime: boom" in item["error_message"]
    assert local_stack.runtime.invoke("ExecutionStatusFunction", event) == {"failed": False}  # repeated event
    # A distributed Map's child execution (not named after a job) is left alone.
    event["detail"]["name"] = "not-a-job"
    assert local_stack.runtime.invoke("ExecutionStatusFunction", event) == {"failed": False}
