"""Progress counters and cancellation on moto's DynamoDB, through the real data access and handlers."""

from __future__ import annotations

import bz2
import json
import os
import threading
import time

import pytest

from queryall.dal.job_progress import JobProgressCounters, Update
from queryall.dal.jobs import JobStore
from queryall.errors import Conflict
from queryall.logic import job_lifecycle
from queryall.logic.aggregation import ROWS_ATTRIBUTE, _item_without_rows
from queryall.logic.cancellation import cancel_job
from queryall.logic.item_fit import ITEM_BUDGET, item_size
from queryall.logic.progress import BatchProgress, JobNoLongerProcessing
from queryall.models.job import JobRequest, JobStatus
from queryall.models.workflow import TenantOutcome
from queryall.observability import metrics

pytestmark = pytest.mark.timeout(120)

TENANTS = 1000
BATCHES = 40


def delete_jobs(local_stack, job_ids: list[str]) -> None:
    """Big or many items are removed after their test: other tests scan the shared table in one page."""
    for job_id in job_ids:
        local_stack.client("dynamodb").delete_item(TableName=local_stack.dynamodb_table_name,
                                                   Key={"job_id": {"S": job_id}})


def new_job(local_stack) -> str:
    job = job_lifecycle.new_job(JobRequest(sql="SELECT 1", limit=10), "key:test", time.time(), 3600)
    JobStore(local_stack.dynamodb_table_name).create(job)
    return job.job_id


def test_a_thousand_tenants_in_forty_concurrent_batches_lose_no_update(local_stack) -> None:
    job_id = new_job(local_stack)
    counters = JobProgressCounters(local_stack.dynamodb_table_name)
    assert counters.set_total(job_id, TENANTS, missing=0) is Update.APPLIED
    # Once only: a retried plan step counts nothing twice.
    assert counters.set_total(job_id, TENANTS, missing=0) is Update.NOT_PROCESSING
    start = threading.Barrier(BATCHES)

    def batch(index: int) -> None:
        # Every tenant its own write (interval 0): the most contention the counters can see.
        progress = BatchProgress(counters, job_id, interval=0)
        start.wait()
        for tenant in range(index, TENANTS, BATCHES):
            progress.tenant_finished(TenantOutcome(bucket=f"t{tenant}", status="error" if tenant % 7 == 0 else "ok",
                                                   rows=tenant % 3))
        progress.flush()

    threads = [threading.Thread(target=batch, args=(i,)) for i in range(BATCHES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    job = JobStore(local_stack.dynamodb_table_name).get(job_id)
    assert job is not None
    assert job.progress().model_dump() == {
        "databases_total": TENANTS, "databases_done": TENANTS,
        "databases_errored": len(range(0, TENANTS, 7)), "rows_so_far": sum(t % 3 for t in range(TENANTS)),
    }


def test_cancelled_job_stays_cancelled_whatever_runs_late(local_stack) -> None:
    job_id = new_job(local_stack)
    jobs = JobStore(local_stack.dynamodb_table_name)
    counters = JobProgressCounters(local_stack.dynamodb_table_name)
    assert job_lifecycle.cancel(jobs, job_id, time.time())
    assert not job_lifecycle.cancel(jobs, job_id, time.time())

    # A late aggregator and a late failure handler, as the workflow would run them.
    plan = {"batches": [], "max_concurrency": 1, "databases_total": 0, "missing": {}}
    aggregate = local_stack.runtime.invoke("AggregateFunction", {"job_id": job_id, "submitted_at": time.time(),
                                                                 "plan": plan, "batch_outcomes": []})
    assert aggregate["completed"] is False
    failed = local_stack.runtime.invoke("FailJobFunction", {"job_id": job_id, "error_code": "internal_error",
                                                            "error_message": "late"})
    assert failed == {"failed": False}
    # A batch still running stops at its next progress update; the counters are not touched.
    with pytest.raises(JobNoLongerProcessing):
        progress = BatchProgress(counters, job_id, interval=0)
        progress.tenant_finished(TenantOutcome(bucket="b", status="ok", rows=1))
    assert counters.set_final(job_id, 5, 0, 5) is Update.NOT_PROCESSING

    job = jobs.get(job_id)
    assert job is not None and job.status is JobStatus.CANCELLED
    assert job.error_code is None and job.rows_so_far == 0


def test_counters_never_recreate_a_deleted_job(local_stack) -> None:
    counters = JobProgressCounters(local_stack.dynamodb_table_name)
    gone = "00000000-0000-4000-8000-000000000000"
    assert counters.add(gone, 1, 0, 1) is Update.NO_JOB
    assert JobStore(local_stack.dynamodb_table_name).get(gone) is None


def test_sample_events_of_the_wait_and_jobs_functions(local_stack) -> None:
    from tests.conftest import API_KEY, ROOT

    for stem, function in (("wait", "WaitFunction"), ("list_jobs", "JobsFunction")):
        event = json.loads((ROOT / "events" / f"{stem}.json").read_text())
        event["headers"]["x-api-key"] = API_KEY
        response = local_stack.runtime.invoke(function, event)
        assert response["statusCode"] == 200, response
        data = json.loads(response["body"])["data"]
        if stem == "wait":
            assert data["unknown_job_ids"] == ["503a73be-9119-43ba-8e30-4f278f978d49"]
        else:
            assert isinstance(data["jobs"], list)


class _RecordingWorkflow:
    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop(self, job_id: str) -> None:
        self.stopped.append(job_id)


@pytest.mark.parametrize("final", ["completed", "failed"])
def test_cancelling_a_finished_job_is_a_conflict_and_changes_nothing(local_stack, final: str) -> None:
    job_id = new_job(local_stack)
    jobs = JobStore(local_stack.dynamodb_table_name)
    if final == "completed":
        assert job_lifecycle.complete(jobs, job_id, '["_bucket"]', bz2.compress(b"[]"), {"total_rows": 0}, time.time())
    else:
        assert job_lifecycle.fail(jobs, job_id, "internal_error", "boom", time.time())
    workflow = _RecordingWorkflow()
    with pytest.raises(Conflict) as raised:
        cancel_job(jobs, workflow, job_id, "key:test", time.time())
    assert raised.value.message == f"Job {job_id} has already {final}; only a processing job can be cancelled"
    assert jobs.get(job_id).status.value == final
    assert workflow.stopped == []
    # Cancelling a processing job stops its workflow; cancelling it again is harmless.
    other = new_job(local_stack)
    assert cancel_job(jobs, workflow, other, "key:test", time.time()).status is JobStatus.CANCELLED
    assert cancel_job(jobs, workflow, other, "key:test", time.time()).status is JobStatus.CANCELLED
    assert workflow.stopped == [other]


def test_an_item_of_exactly_the_item_budget_is_accepted_by_dynamodb(local_stack) -> None:
    """ITEM_BUDGET must stay under what DynamoDB (and moto, which is stricter) accepts: the completed item,
    padded to exactly ITEM_BUDGET bytes as `item_size` counts them, is written."""
    job = job_lifecycle.new_job(JobRequest(sql="SELECT 1", limit=10), "key:test", time.time(), 3600)
    jobs = JobStore(local_stack.dynamodb_table_name)
    jobs.create(job)
    columns = '["_bucket","n"]'
    meta = {"schema": [], "databases_queried": 1, "errors": {"x": "é" * 50}, "execution_time_seconds": 9_999_999.999}
    room = ITEM_BUDGET - item_size(_item_without_rows(job, columns, meta, 0.0)) - len(ROWS_ATTRIBUTE)
    rows_bz2 = os.urandom(room)
    assert item_size(_item_without_rows(job, columns, meta, 0.0) | {ROWS_ATTRIBUTE: rows_bz2}) == ITEM_BUDGET
    try:
        assert job_lifecycle.complete(jobs, job.job_id, columns, rows_bz2, meta, time.time())
        stored = jobs.get(job.job_id)
        assert stored is not None and stored.status is JobStatus.COMPLETED and stored.rows_bz2 == rows_bz2
    finally:
        delete_jobs(local_stack, [job.job_id])


def test_a_read_never_sees_a_job_half_finished(local_stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies an UpdateItem atomically: a concurrent read sees the job processing, or completed
    with its meta, never completed without it (seen once as a poll's 500, KeyError 'returned_rows').
    moto applies each SET of an update in turn; here each takes a millisecond longer, so a read that is
    not kept out of an update lands in the middle of one."""
    from moto.dynamodb.parsing.executors import SetExecutor

    set_attribute = SetExecutor.execute

    def slow_set(self, item) -> None:
        set_attribute(self, item)
        time.sleep(0.001)

    monkeypatch.setattr(SetExecutor, "execute", slow_set)
    # Completing jobs outside a handler adds metrics nobody flushes; Powertools flushes at 100 on its own.
    monkeypatch.setattr(metrics, "namespace", "QueryAllTest")
    jobs = JobStore(local_stack.dynamodb_table_name)
    ids = [new_job(local_stack) for _ in range(40)]
    meta = {"total_rows": 1, "returned_rows": 1, "errors": {f"t{i}": "x" * 50 for i in range(200)}}
    torn: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for job in jobs.get_many(ids).values():
                if job.status is JobStatus.COMPLETED and (job.meta is None or job.rows_bz2 is None):
                    torn.append(job.job_id)
            for job_id in ids[::7]:
                job = jobs.get(job_id)
                if job is not None and job.status is JobStatus.COMPLETED and job.meta is None:
                    torn.append(job_id)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for job_id in ids:
            assert job_lifecycle.complete(jobs, job_id, '["_bucket"]', bz2.compress(b"[]"), meta, time.time())
    finally:
        stop.set()
        for reader in readers:
            reader.join()
        delete_jobs(local_stack, ids)
    assert torn == []
