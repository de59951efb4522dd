"""Waiting for many jobs, live progress, cancel and job history, over real HTTP against the local stack.

Slow jobs use a heavy but ordinary query (hashing a large `range`, ~1 s per tenant), allowed anywhere:
no test-only switch exists in the stack."""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
import uuid
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CORRUPT_BUCKET, OTHER_API_KEY, Api
from tests.e2e.stack_jobs import buckets, job_item, slow_sql

pytestmark = pytest.mark.timeout(180)


def wait(api: Api, job_ids: list[str], timeout: float, *, key: str | None = "default") -> dict:
    query = urllib.parse.urlencode({"job_ids": json.dumps(job_ids), "timeout_seconds": timeout})
    result = api.request("GET", f"/query-all/wait?{query}", api_key=key)
    assert result.status == 200, result.body
    return result.body["data"]


def without_url(body: dict) -> dict:
    return body | {"meta": {k: v for k, v in body["meta"].items() if k != "result_url"}}


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def cancel_quietly(api: Api, job_id: str) -> None:
    """Frees the CPU a slow job would keep using (the batch stops at its next progress update)."""
    api.request("DELETE", f"/query-all/jobs/{job_id}")


# --------------------------------------------------------------------------------------------
# wait


def test_wait_returns_within_300_ms_of_the_last_of_several_concurrent_jobs(
    api: Api, local_stack, tenants_dir: Path
) -> None:
    two = buckets(tenants_dir, 2)
    sizes = [2_000_000, 20_000_000, 60_000_000]
    ids = [api.submit({"sql": slow_sql(n), "buckets": two}) for n in sizes]
    data = wait(api, ids, 25)
    returned_at = time.time()
    assert data["timed_out"] is False and data["remaining_job_ids"] == [] and data["unknown_job_ids"] == []
    assert [(e["job_id"], e["status"]) for e in data["jobs"]] == [(i, "completed") for i in ids]
    for entry, size in zip(data["jobs"], sizes, strict=True):
        expected = duckdb.sql(slow_sql(size)).fetchone()[0]
        assert entry["data"]["rows"] == [[b, expected] for b in two]
        assert entry["meta"]["databases_queried"] == 2
        # Exactly what poll returns, but for the result URL, signed afresh on every response.
        polled = api.request("GET", f"/query-all/jobs/{entry['job_id']}").body
        assert without_url(entry) == {"job_id": entry["job_id"], "status": "completed", **without_url(polled)}
    last_finished = max(epoch(job_item(local_stack, i)["finished_at"]) for i in ids)
    latency = returned_at - last_finished
    print(f"wait returned {latency * 1000:.0f} ms after the last job finished")
    assert 0 <= latency <= 0.3


def test_wait_times_out_with_the_remaining_ids_and_their_progress(api: Api, tenants_dir: Path) -> None:
    done = api.submit({"sql": "SELECT 1 AS one", "buckets": buckets(tenants_dir, 1)})
    assert wait(api, [done], 25)["timed_out"] is False
    slow = api.submit({"sql": slow_sql(150_000_000), "buckets": buckets(tenants_dir, 3)})
    try:
        started = time.monotonic()
        data = wait(api, [slow, done], 1)
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 2.0
        assert data["timed_out"] is True
        assert data["remaining_job_ids"] == [slow]
        assert [e["job_id"] for e in data["jobs"]] == [done]
        assert set(data["progress"]) == {slow}
        assert data["progress"][slow]["databases_total"] in (None, 3)
    finally:
        cancel_quietly(api, slow)


def test_wait_accepts_repeated_ids_and_reports_unknown_ones(api: Api, local_stack, tenants_dir: Path) -> None:
    mine = api.submit({"sql": "SELECT 1 AS one", "buckets": buckets(tenants_dir, 1)})
    theirs = Api(api.base_url, OTHER_API_KEY).submit({"sql": "SELECT 1 AS one", "buckets": buckets(tenants_dir, 1)})
    missing = str(uuid.uuid4())
    query = urllib.parse.urlencode([("job_ids", mine), ("job_ids", f"{missing},{mine}"), ("job_ids", theirs),
                                    ("job_ids", "nope"), ("timeout_seconds", "20")])
    result = api.request("GET", f"/query-all/wait?{query}")
    assert result.status == 200
    data = result.body["data"]
    assert [e["job_id"] for e in data["jobs"]] == [mine]  # duplicates collapsed
    assert data["unknown_job_ids"] == [missing, theirs, "nope"]  # another caller's job is unknown here
    assert data["timed_out"] is False
    # The other caller sees its own job.
    assert [e["job_id"] for e in wait(api, [theirs], 20, key=OTHER_API_KEY)["jobs"]] == [theirs]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("", "job_ids"),
        ("job_ids=", "job_ids"),
        ("job_ids=%5B1%5D", "job_ids"),
        ("job_ids=a&timeout_seconds=26", "timeout_seconds"),
        ("job_ids=a&timeout_seconds=-1", "timeout_seconds"),
        ("job_ids=a&timeout_seconds=soon", "timeout_seconds"),
        ("job_ids=" + ",".join(str(uuid.UUID(int=i)) for i in range(101)), "at most 100"),
    ],
)
def test_bad_wait_requests_get_400(api: Api, query: str, needle: str) -> None:
    result = api.request("GET", f"/query-all/wait?{query}")
    assert result.status == 400, result.body
    assert result.body["error"]["code"] == "invalid_request"
    assert needle in result.body["error"]["message"]


def test_wait_needs_a_key(api: Api) -> None:
    assert api.request("GET", f"/query-all/wait?job_ids={uuid.uuid4()}", api_key=None).status == 401


# --------------------------------------------------------------------------------------------
# progress


def test_progress_only_grows_and_ends_at_the_total(api: Api, local_stack, tenants_dir: Path) -> None:
    targets = [*buckets(tenants_dir), CORRUPT_BUCKET, "no-such-tenant"]
    job_id = api.submit({"sql": slow_sql(4_000_000), "buckets": targets})
    samples = []
    while True:
        data = api.request("GET", f"/query-all/jobs/{job_id}").body["data"]
        if "progress" not in data:
            break
        samples.append(data["progress"])
        time.sleep(0.02)
    fields = ("databases_done", "databases_errored", "rows_so_far")
    for before, after in itertools.pairwise(samples):
        assert all(after[f] >= before[f] for f in fields), (before, after)
        assert before["databases_total"] is None or after["databases_total"] == before["databases_total"]
    assert all(s["databases_done"] <= len(targets) for s in samples)
    # The bar moved: several distinct values were seen while the job ran.
    assert len({s["databases_done"] for s in samples}) >= 3, samples
    assert {s["databases_total"] for s in samples} - {None} == {len(targets)}
    item = job_item(local_stack, job_id)
    assert item["status"] == "completed"
    assert int(item["databases_total"]) == int(item["databases_done"]) == len(targets)
    assert int(item["databases_errored"]) == 2  # the corrupt file and the missing bucket
    assert int(item["rows_so_far"]) == len(targets) - 2


# --------------------------------------------------------------------------------------------
# cancel


def test_cancel_mid_run_stops_the_job_for_good(api: Api, local_stack, tenants_dir: Path) -> None:
    three = buckets(tenants_dir, 3)
    submitted = time.monotonic()
    job_id = api.submit({"sql": slow_sql(120_000_000), "buckets": three})
    while True:  # until the first tenant is done: the job is really running
        data = api.request("GET", f"/query-all/jobs/{job_id}").body["data"]
        assert data["status"] == "processing"
        if data["progress"]["databases_done"] >= 1:
            break
        assert time.monotonic() - submitted < 30
        time.sleep(0.05)
    listed = api.request("GET", "/query-all/jobs?limit=5").body["data"]["jobs"]
    assert next(j for j in listed if j["job_id"] == job_id)["progress"]["databases_total"] == 3
    full_run = (time.monotonic() - submitted) * len(three)  # about how long the whole job would take

    first = api.request("DELETE", f"/query-all/jobs/{job_id}")
    assert first.status == 200 and first.body == {"data": {"job_id": job_id, "status": "cancelled"}}
    again = api.request("DELETE", f"/query-all/jobs/{job_id}")
    assert again.status == 200 and again.body == first.body

    sfn = local_stack.client("stepfunctions")
    execution = local_stack.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + job_id
    time.sleep(max(0.0, submitted + full_run + 1.0 - time.monotonic()))
    # moto ends a Map stopped mid-iteration as FAILED (AWS says ABORTED); either way it stopped early,
    # before Aggregate or FailJob ran.
    described = sfn.describe_execution(executionArn=execution)
    assert described["status"] in ("ABORTED", "FAILED")
    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    entered = {e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e}
    assert "Aggregate" not in entered and "FailJob" not in entered
    assert api.request("GET", f"/query-all/jobs/{job_id}").body == {"data": {"job_id": job_id,
                                                                             "status": "cancelled"}}
    item = job_item(local_stack, job_id)
    assert item["status"] == "cancelled" and "finished_at" in item
    assert int(item["databases_done"]) < len(three)  # the running batch stopped at its next update
    data = wait(api, [job_id], 5)
    assert data["jobs"] == [{"job_id": job_id, "status": "cancelled",
                             "data": {"job_id": job_id, "status": "cancelled"}}]


def test_cancelling_a_finished_job_is_a_conflict(api: Api, tenants_dir: Path) -> None:
    completed = api.submit({"sql": "SELECT 1 AS one", "buckets": buckets(tenants_dir, 1)})
    failed = api.submit({"question": "how many people?"})
    for job_id, status in ((completed, "completed"), (failed, "failed")):
        assert wait(api, [job_id], 20)["jobs"][0]["status"] == status
        result = api.request("DELETE", f"/query-all/jobs/{job_id}")
        assert result.status == 409, result.body
        assert result.body["error"]["code"] == "conflict" and status in result.body["error"]["message"]
    assert api.request("GET", f"/query-all/jobs/{completed}").body["data"]["rows"] == [[buckets(tenants_dir, 1)[0],
                                                                                         1]]


def test_cancel_of_unknown_or_another_callers_job_is_404(api: Api, tenants_dir: Path) -> None:
    theirs = Api(api.base_url, OTHER_API_KEY).submit({"sql": slow_sql(300_000_000),
                                                      "buckets": buckets(tenants_dir, 1)})
    for job_id in (theirs, str(uuid.uuid4()), "not-a-job"):
        result = api.request("DELETE", f"/query-all/jobs/{job_id}")
        assert result.status == 404 and result.body["error"]["code"] == "not_found"
    assert api.request("DELETE", f"/query-all/jobs/{theirs}", api_key=OTHER_API_KEY).status == 200


def test_concurrent_cancels_agree(api: Api, tenants_dir: Path) -> None:
    job_id = api.submit({"sql": slow_sql(100_000_000), "buckets": buckets(tenants_dir, 2)})
    results = []
    threads = [threading.Thread(target=lambda: results.append(api.request("DELETE", f"/query-all/jobs/{job_id}")))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == [200] * 4
    assert all(r.body["data"]["status"] == "cancelled" for r in results)


# --------------------------------------------------------------------------------------------
# history


def test_history_is_newest_first_paged_and_owner_scoped(api: Api, local_stack, tenants_dir: Path) -> None:
    other = Api(api.base_url, OTHER_API_KEY)
    one = buckets(tenants_dir, 1)
    ids = []
    for n in range(4):
        ids.append(other.submit({"sql": f"SELECT {n} AS n", "buckets": one, "table": "person", "limit": 3}))
        time.sleep(0.005)  # distinct created_at milliseconds
    mine = api.submit({"sql": "SELECT 1 AS one", "buckets": one})
    wait(other, ids, 20, key=OTHER_API_KEY)
    # One of them expired (TTL has not deleted it yet): never listed.
    local_stack.client("dynamodb").update_item(
        TableName=local_stack.dynamodb_table_name, Key={"job_id": {"S": ids[1]}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})

    listed, cursor, pages = [], None, 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        result = other.request("GET", f"/query-all/jobs?{query}")
        assert result.status == 200, result.body
        page = result.body["data"]
        assert len(page["jobs"]) <= 2
        listed += page["jobs"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    listed_ids = [j["job_id"] for j in listed]
    assert pages >= 2
    assert listed_ids[:3] == [ids[3], ids[2], ids[0]]  # newest first, the expired one left out
    assert ids[1] not in listed_ids and mine not in listed_ids
    assert len(set(listed_ids)) == len(listed_ids)
    created = [j["created_at"] for j in listed]
    assert created == sorted(created, reverse=True)
    assert listed[0] == {
        "job_id": ids[3], "status": "completed", "created_at": listed[0]["created_at"],
        "finished_at": listed[0]["finished_at"], "error_code": None, "progress": None,
        "request": {"sql": "SELECT 3 AS n", "question": None, "buckets": 1, "table": "person", "limit": 3},
    }
    assert epoch(listed[0]["finished_at"]) >= epoch(listed[0]["created_at"])
    # The first caller sees none of the other's jobs, and its own.
    first_page = api.request("GET", "/query-all/jobs?limit=100").body["data"]["jobs"]
    assert mine in [j["job_id"] for j in first_page]
    assert not set(ids) & {j["job_id"] for j in first_page}


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "cursor=nope", "cursor=" + "x" * 2000])
def test_bad_history_requests_get_400(api: Api, query: str) -> None:
    result = api.request("GET", f"/query-all/jobs?{query}")
    assert result.status == 400, result.body
    assert result.body["error"]["code"] == "invalid_request"
