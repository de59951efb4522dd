"""10,000 buckets of the longest ids: what travels in the workflow input, the state and the job item stays
small, and what was kept in S3 comes back whole (the end-to-end run is tests/e2e/test_large_requests.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from queryall.logic.aggregation import CombinedResult, _item_without_rows, completed_item
from queryall.logic.distribution import INLINE_PLAN_BYTES, distribute, planned_batches
from queryall.logic.item_fit import item_size
from queryall.logic.job_history import job_summary
from queryall.logic.planning import plan_targets
from queryall.logic.polling import job_response_body
from queryall.logic.result_links import ResultLinks
from queryall.logic.submission import INLINE_BUCKETS_BYTES, submit_job
from queryall.models.api import SubmitRequest
from queryall.models.execution import ExecutionInput
from queryall.models.job import Job, JobRequest, JobStatus
from queryall.models.workflow import MapItem, TenantOutcome

JOB_ID = "503a73be-9119-43ba-8e30-4f278f978d49"
STATE_LIMIT = 256 * 1024
ITEM_LIMIT = 400 * 1024


def longest_ids(count: int) -> list[str]:
    return [f"missing-{i:05d}-".ljust(63, "x") for i in range(count)]


class FakeDocuments:
    """JobDocuments in memory, holding what S3 would hold (JSON text)."""

    bucket = "results"

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], str] = {}

    def put(self, job_id: str, name: str, value: Any) -> None:
        self.stored[job_id, name] = json.dumps(value)

    def get(self, job_id: str, name: str) -> Any:
        return json.loads(self.stored[job_id, name])


class FakeJobs:
    def __init__(self) -> None:
        self.created: list[Job] = []

    def create(self, job: Job) -> None:
        self.created.append(job)


class FakeWorkflow:
    def __init__(self) -> None:
        self.inputs: list[ExecutionInput] = []

    def start(self, execution: ExecutionInput) -> str:
        self.inputs.append(execution)
        return "arn"


class PassingGuard:
    def check(self, sql: str) -> dict:
        return {"ok": True, "sql": sql}


def _submit(buckets: list[str]) -> tuple[Job, FakeJobs, FakeWorkflow, FakeDocuments]:
    jobs, workflow, documents = FakeJobs(), FakeWorkflow(), FakeDocuments()
    job = submit_job(SubmitRequest(sql="SELECT 1", buckets=buckets), "key:x", jobs=jobs, workflow=workflow,
                     sql_guard=PassingGuard(), now=1_700_000_000.0, ttl_seconds=3600, documents=documents)
    return job, jobs, workflow, documents


def test_a_long_list_of_buckets_is_kept_in_s3_and_only_its_length_travels() -> None:
    buckets = longest_ids(10_000)
    job, jobs, workflow, documents = _submit(buckets)

    assert documents.get(job.job_id, "buckets.json") == buckets
    (created,) = jobs.created
    assert created.request.buckets is None and created.request.buckets_stored
    assert created.request.bucket_count == 10_000
    assert len(created.model_dump_json()) < 2048  # the item, and so each job-list entry, stays small
    (execution,) = workflow.inputs
    assert execution.buckets is None and execution.buckets_stored and execution.bucket_count == 10_000
    assert len(execution.model_dump_json()) < 1024
    assert job_summary(created).request.buckets == 10_000


def test_a_short_list_of_buckets_stays_in_the_item_and_the_input() -> None:
    _job, jobs, workflow, documents = _submit(["acme", "globex"])
    assert documents.stored == {}
    assert jobs.created[0].request.buckets == ["acme", "globex"] and not jobs.created[0].request.buckets_stored
    assert workflow.inputs[0].buckets == ["acme", "globex"]
    assert len(json.dumps(longest_ids(60))) <= INLINE_BUCKETS_BYTES < len(json.dumps(longest_ids(70)))


def _tenants(tmp_path: Path, names: list[str]):
    from queryall.dal.tenant_databases import tenant_databases

    for name in names:
        (tmp_path / f"warehouse_{name}.duckdb").write_bytes(b"")
    return tenant_databases(str(tmp_path / "warehouse_{bucket}.duckdb"))


class FakeItems:
    bucket = "results"

    def __init__(self) -> None:
        self.stored: dict[str, list[MapItem]] = {}

    def put(self, job_id: str, items: list[MapItem]) -> str:
        self.stored[job_id] = items
        return job_id

    def get(self, key: str) -> list[MapItem]:
        return self.stored[key]


def test_a_plan_of_10000_buckets_fits_the_state_and_comes_back_whole(tmp_path: Path) -> None:
    real = ["acme", "globex"]
    buckets = real + longest_ids(9_998)
    documents, items = FakeDocuments(), FakeItems()
    documents.put(JOB_ID, "buckets.json", buckets)
    execution = ExecutionInput(job_id=JOB_ID, submitted_at=0, sql="SELECT 1", limit=1, bucket_count=len(buckets),
                               buckets_stored=True)

    planned = plan_targets(execution, _tenants(tmp_path, real), 100, 40, documents=documents)
    assert len(planned.missing) == 9_998
    state = distribute(planned, JOB_ID, threshold=1000, max_batch_size=100, max_concurrency=40,
                       distributed_max_concurrency=400, items=items, documents=documents)

    assert len(state.model_dump_json()) < INLINE_PLAN_BYTES < STATE_LIMIT
    assert state.reports_stored and state.missing == {} and state.missing_count == 9_998
    assert state.databases_total == 10_000
    back = planned_batches(state, items, JOB_ID, documents)
    assert back.missing == planned.missing and back.skipped == planned.skipped
    assert [b.buckets for b in back.batches] == [real]


def test_many_long_target_names_go_distributed_below_the_threshold() -> None:
    from queryall.models.workflow import Batch, Plan

    names = longest_ids(900)
    plan = Plan(batches=[Batch(batch_index=0, buckets=names)], max_concurrency=40, databases_total=900)
    items = FakeItems()
    state = distribute(plan, JOB_ID, threshold=1000, max_batch_size=100, max_concurrency=40,
                       distributed_max_concurrency=400, items=items, documents=FakeDocuments())
    assert state.mode == "distributed" and state.batches == []
    assert [item.bucket for item in items.stored[JOB_ID]] == names


def _completed(job: Job, documents: FakeDocuments, errors: int) -> Job:
    outcomes = [TenantOutcome(bucket="acme", status="ok")]
    outcomes += [TenantOutcome(bucket=b, status="error", message=f"No database for bucket '{b}' (warehouse_{b})")
                 for b in longest_ids(errors)]
    result = CombinedResult(outcomes, pa.table({"_bucket": ["acme"], "one": [1]}))
    item = completed_item(job, result, 1.0, 0.0, documents=documents)
    return job.model_copy(update={"status": JobStatus.COMPLETED, "columns": item.columns, "rows_bz2": item.rows_bz2,
                                  "meta": json.dumps(item.meta)})


class FakeResultStore:
    bucket = "results"

    def presigned_url(self, job_id: str, result_format: str, expires_in: int) -> str:
        return f"https://example/{job_id}/{result_format}"


def test_thousands_of_errors_leave_the_item_small_and_poll_returns_every_one(monkeypatch) -> None:
    job = Job(job_id=JOB_ID, status=JobStatus.PROCESSING, owner="key:x", created_at="2026-01-01T00:00:00.000Z",
              submitted_at=0.0, expires_at=3600, request=JobRequest(sql="SELECT 1", limit=1, bucket_count=10_000,
                                                                    buckets_stored=True))
    documents = FakeDocuments()
    completed = _completed(job, documents, 9_999)

    stored_meta = json.loads(completed.meta)
    assert stored_meta["errors"] is None and stored_meta["reports_stored"] is True
    assert item_size(_item_without_rows(job, completed.columns, stored_meta, 0.0)) < 16 * 1024 < ITEM_LIMIT
    monkeypatch.setattr("queryall.logic.result_links.JobDocuments", lambda bucket: documents)
    body = json.loads(job_response_body(completed, links=ResultLinks(FakeResultStore(), 900, 0.0)))
    meta = body["meta"]
    assert "reports_stored" not in meta
    assert len(meta["errors"]) == 9_999 and meta["databases_errored"] == 9_999
    assert meta["errors"][longest_ids(1)[0]].startswith("No database for bucket")
    assert meta["skipped"] == [] and body["data"]["rows"] == [["acme", 1]]
    assert list(meta) == ["schema", "databases_queried", "databases_skipped", "databases_errored", "total_rows",
                          "execution_time_seconds", "skipped", "errors", "returned_rows", "truncated",
                          "next_cursor", "result_url"]


def test_a_few_errors_stay_in_the_item() -> None:
    job = Job(job_id=JOB_ID, status=JobStatus.PROCESSING, owner="key:x", created_at="2026-01-01T00:00:00.000Z",
              submitted_at=0.0, expires_at=3600, request=JobRequest(sql="SELECT 1", limit=1))
    documents = FakeDocuments()
    completed = _completed(job, documents, 50)
    assert documents.stored == {}
    assert len(json.loads(job_response_body(completed))["meta"]["errors"]) == 50



def test_a_question_job_s_stored_buckets_reach_the_sql_generator_too() -> None:
    from queryall.logic.planning import requested_buckets

    documents = FakeDocuments()
    documents.put(JOB_ID, "buckets.json", longest_ids(100))
    stored = ExecutionInput(job_id=JOB_ID, submitted_at=0, question="how many?", limit=1, bucket_count=100,
                            buckets_stored=True)
    assert requested_buckets(stored, documents) == longest_ids(100)
    inline = ExecutionInput(job_id=JOB_ID, submitted_at=0, question="how many?", limit=1, buckets=["acme"])
    assert requested_buckets(inline, None) == ["acme"]
