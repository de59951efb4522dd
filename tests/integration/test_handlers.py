"""Each function's handler, run by the local Lambda runtime against moto's real services."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from queryall.dal.jobs import JobStore
from queryall.dal.partial_results import PartialResultStore
from queryall.logic import job_lifecycle
from queryall.models.job import JobRequest
from queryall.settings import get_settings, reset_caches
from tests.conftest import API_KEY, CORRUPT_BUCKET, Api

pytestmark = pytest.mark.timeout(120)


def tenant_buckets(tenants_dir: Path) -> list[str]:
    return sorted(p.stem.removeprefix("warehouse_") for p in tenants_dir.glob("warehouse_*.duckdb"))


def new_processing_job(stack, sql: str = "SELECT 1") -> str:
    job = job_lifecycle.new_job(JobRequest(sql=sql, limit=10), "key:test", time.time(), 3600)
    JobStore(stack.dynamodb_table_name).create(job)
    return job.job_id


def read_job(stack, job_id: str) -> dict:
    item = stack.client("dynamodb").get_item(TableName=stack.dynamodb_table_name, Key={"job_id": {"S": job_id}},
                                             ConsistentRead=True)["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def test_sql_guard_function_gives_a_verdict(local_stack) -> None:
    ok = local_stack.runtime.invoke("SqlGuardFunction", {"sql": "SELECT 1 AS one;"})
    assert ok == {"ok": True, "sql": "SELECT 1 AS one"}
    rejected = local_stack.runtime.invoke("SqlGuardFunction", {"sql": "DROP TABLE person"})
    assert rejected["ok"] is False and "DROP" in rejected["message"]
    assert local_stack.runtime.invoke("SqlGuardFunction", {"sql": 5})["ok"] is False


def test_plan_targets_batches_every_tenant(local_stack, tenants_dir: Path) -> None:
    event = json.loads(Path("events/plan_targets.json").read_text()) | {"buckets": None}
    plan = local_stack.runtime.invoke("PlanTargetsFunction", event)
    planned = [b for batch in plan["batches"] for b in batch["buckets"]]
    assert planned == tenant_buckets(tenants_dir)
    assert plan["databases_total"] == len(planned)
    batch_size = get_settings().query_batch_size
    assert all(len(batch["buckets"]) <= batch_size for batch in plan["batches"])


def test_query_batch_writes_partial_and_summary(local_stack, tenants_dir: Path) -> None:
    job_id = str(uuid.uuid4())
    healthy = [b for b in tenant_buckets(tenants_dir) if b != CORRUPT_BUCKET][:3]
    event = {"job_id": job_id, "sql": "SELECT id, email FROM person ORDER BY id", "limit": 5, "table": "person",
             "batch": {"batch_index": 7, "buckets": [*healthy, CORRUPT_BUCKET]}}
    result = local_stack.runtime.invoke("QueryBatchFunction", event)
    assert result["batch_index"] == 7 and result["databases"] == 4 and result["rows"] == 15
    s3 = local_stack.client("s3")
    bucket = local_stack.results_bucket_name
    summary = json.loads(s3.get_object(Bucket=bucket, Key=f"jobs/{job_id}/partials/000007.json")["Body"].read())
    statuses = {o["bucket"]: o["status"] for o in summary["outcomes"]}
    assert statuses == {**dict.fromkeys(healthy, "ok"), CORRUPT_BUCKET: "error"}
    tables = [pa.ipc.open_stream(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).read_all()
              for k in summary["partial_keys"]]
    rows = pa.concat_tables(tables).to_pylist()
    expected = []
    for b in healthy:
        with duckdb.connect(str(tenants_dir / f"warehouse_{b}.duckdb"), read_only=True) as con:
            expected += [{"_bucket": b, "id": i, "email": e}
                         for i, e in con.execute("SELECT id, email FROM person ORDER BY id LIMIT 5").fetchall()]
    assert rows == expected


def test_aggregate_marks_a_failed_batch_errored_and_completes(local_stack, tenants_dir: Path) -> None:
    job_id = new_processing_job(local_stack)
    healthy = [b for b in tenant_buckets(tenants_dir) if b != CORRUPT_BUCKET][:2]
    local_stack.runtime.invoke("QueryBatchFunction", {
        "job_id": job_id, "sql": "SELECT count(*) AS n FROM person", "limit": 10, "table": None,
        "batch": {"batch_index": 0, "buckets": healthy[:1]}})
    cause = json.dumps({"errorMessage": "Task timed out after 900.00 seconds", "errorType": "Sandbox.Timedout"})
    event = {
        "job_id": job_id, "submitted_at": time.time() - 1,
        "plan": {"batches": [{"batch_index": 0, "buckets": healthy[:1]}, {"batch_index": 1, "buckets": healthy[1:]}],
                 "max_concurrency": 2, "databases_total": 3, "missing": {"ghost": "No database for bucket 'ghost'"}},
        "batch_outcomes": [{"batch_index": 0, "databases": 1, "rows": 1},
                           {"batch_index": 1, "error": {"Error": "Sandbox.Timedout", "Cause": cause}}],
    }
    assert local_stack.runtime.invoke("AggregateFunction", event) == {"completed": True}
    item = read_job(local_stack, job_id)
    assert item["status"] == "completed"
    meta = json.loads(item["meta"])
    assert meta["databases_queried"] == 1 and meta["databases_errored"] == 2
    assert meta["errors"][healthy[1]] == "Sandbox.Timedout: Task timed out after 900.00 seconds"
    assert "ghost" in meta["errors"]


def test_fail_job_is_final_and_idempotent(local_stack) -> None:
    job_id = new_processing_job(local_stack)
    cause = json.dumps({"errorMessage": "boom", "errorType": "RuntimeError"})
    event = {"job_id": job_id, "error_code": "internal_error", "error": {"Error": "RuntimeError", "Cause": cause}}
    assert local_stack.runtime.invoke("FailJobFunction", event) == {"failed": True}
    item = read_job(local_stack, job_id)
    assert item["status"] == "failed" and item["error_code"] == "internal_error"
    assert item["error_message"] == "Query workflow failed: RuntimeError: boom"
    # A repeated or late failure never rewrites a final job.
    event["error_message"] = "something else"
    assert local_stack.runtime.invoke("FailJobFunction", event) == {"failed": False}
    assert read_job(local_stack, job_id)["error_message"] == "Query workflow failed: RuntimeError: boom"


def test_completed_job_is_not_overwritten_by_a_late_failure(api: Api, local_stack) -> None:
    job_id = api.submit({"sql": "SELECT 1 AS one", "limit": 1})
    assert api.wait(job_id)["meta"]["total_rows"] > 0
    event = {"job_id": job_id, "error_code": "internal_error", "error_message": "late"}
    assert local_stack.runtime.invoke("FailJobFunction", event) == {"failed": False}
    assert read_job(local_stack, job_id)["status"] == "completed"


def test_when_the_workflow_cannot_start_the_job_fails_and_submit_says_503(
    api: Api, local_stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = local_stack.state_machine_arn + "-missing"
    monkeypatch.setenv("STATE_MACHINE_ARN", missing)
    reset_caches()
    try:
        result = api.request("POST", "/query-all", {"sql": "SELECT 1"})
    finally:
        monkeypatch.undo()
        reset_caches()
    assert result.status == 503
    assert result.body["error"]["code"] == "service_unavailable"
    pages = local_stack.client("dynamodb").get_paginator("scan").paginate(TableName=local_stack.dynamodb_table_name)
    items = [item for page in pages for item in page["Items"]]  # a large job fills a page by itself
    failed = [i for i in items if i.get("error_code", {}).get("S") == "start_failed"]
    assert len(failed) == 1 and failed[0]["status"]["S"] == "failed"
    assert "Could not start the query workflow" in failed[0]["error_message"]["S"]


def test_a_workflow_step_failure_ends_the_job_failed_not_processing(
    api: Api, local_stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A broken tenant location makes PlanTargets raise: the Catch path must end the job failed.
    monkeypatch.setenv("TENANT_DATABASES", "/nowhere/without-placeholder.duckdb")
    reset_caches()
    try:
        body = api.run({"sql": "SELECT 1 AS one", "limit": 1})
    finally:
        monkeypatch.undo()
        reset_caches()
    data = body["data"]
    assert data["status"] == "failed"
    assert data["error_code"] == "internal_error"
    assert "TENANT_DATABASES must contain {bucket}" in data["error_message"]


def test_failing_batches_never_fail_the_job(
    api: Api, local_stack, tenants_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no bucket for partial results every batch fails (the aggregator still writes the full result to
    # the real bucket); each batch's Catch reports its tenants as errored.
    original = PartialResultStore.__init__
    monkeypatch.setattr(PartialResultStore, "__init__", lambda store, _: original(store, "no-such-results-bucket"))
    try:
        body = api.run({"sql": "SELECT 1 AS one", "limit": 1})
    finally:
        monkeypatch.undo()
    meta = body["meta"]
    assert body["data"]["rows"] == []
    assert meta["databases_errored"] == len(tenant_buckets(tenants_dir))
    assert all("NoSuchBucket" in message for message in meta["errors"].values())


def test_invoke_events_in_events_folder_are_valid_for_their_functions(local_stack) -> None:
    names = {"sql_guard": "SqlGuardFunction", "plan_targets": "PlanTargetsFunction",
             "refresh_catalog": "RefreshCatalogFunction"}
    for stem, function in names.items():
        event = json.loads(Path(f"events/{stem}.json").read_text())
        assert local_stack.runtime.invoke(function, event)
    submit = json.loads(Path("events/submit.json").read_text())
    submit["headers"]["x-api-key"] = API_KEY
    response = local_stack.runtime.invoke("SubmitFunction", submit)
    assert response["statusCode"] == 202
    databases = json.loads(Path("events/databases.json").read_text())
    databases["headers"]["x-api-key"] = API_KEY
    assert local_stack.runtime.invoke("CatalogApiFunction", databases)["statusCode"] == 200
