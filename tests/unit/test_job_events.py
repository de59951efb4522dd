"""Which writes of a job item are state changes, and what their event says (queryall.logic.job_events)."""

from __future__ import annotations

import json

from queryall.logic.job_events import state_change
from queryall.models.job import Job, JobRequest, JobStatus
from queryall.models.job_event import event_schema
from tests.conftest import ROOT

META = {"schema": [], "databases_queried": 3, "databases_skipped": 1, "databases_errored": 1, "total_rows": 7,
        "execution_time_seconds": 1.5, "skipped": ["b"], "errors": {"c": "boom"}, "returned_rows": 7,
        "truncated": False}


def job(status: JobStatus = JobStatus.PROCESSING, **values: object) -> Job:
    base = {"job_id": "j1", "status": status, "owner": "key:1", "created_at": "2026-01-01T00:00:00.000Z",
            "submitted_at": 1.0, "expires_at": 100, "request": JobRequest(sql="SELECT 1", limit=10)}
    return Job.model_validate(base | values)


def test_creation_is_the_first_state_change() -> None:
    detail = state_change(None, job(state_sequence=1), "results")
    assert detail.model_dump() == {
        "job_id": "j1", "owner": "key:1", "currentState": JobStatus.PROCESSING, "previousState": None,
        "sequenceNumber": 1, "submitted_at": "2026-01-01T00:00:00.000Z", "finished_at": None, "sql": "SELECT 1",
        "meta": None, "error_code": None, "error_message": None, "result": None}


def test_writes_that_keep_the_status_are_not_state_changes() -> None:
    assert state_change(job(), job(databases_done=3, rows_so_far=9), "results") is None  # progress
    assert state_change(job(), None, "results") is None  # deleted by TTL
    done = job(JobStatus.COMPLETED, meta=json.dumps(META))
    assert state_change(done, done, "results") is None


def test_completion_carries_the_meta_counts_and_the_result_location_never_rows() -> None:
    new = job(JobStatus.COMPLETED, meta=json.dumps(META), finished_at="2026-01-01T00:00:02.000Z",
              columns='["a"]', rows_bz2=b"rows", state_sequence=2)
    detail = state_change(job(state_sequence=1), new, "results")
    assert (detail.previousState, detail.currentState, detail.sequenceNumber) == ("processing", "completed", 2)
    assert detail.meta.model_dump() == {"databases_queried": 3, "databases_skipped": 1, "databases_errored": 1,
                                        "total_rows": 7, "truncated": False, "execution_time_seconds": 1.5}
    assert detail.result.model_dump() == {"bucket": "results", "keys": {
        "json": "jobs/j1/result.json", "arrow": "jobs/j1/result.arrow", "csv": "jobs/j1/result.csv",
        "parquet": "jobs/j1/result.parquet"}}
    assert "rows" not in detail.model_dump_json().replace("total_rows", "")


def test_a_completed_job_without_its_counts_still_gets_its_event_without_meta() -> None:
    # Retried, such a record would fail every time and hold back its stream shard (seen locally).
    new = job(JobStatus.COMPLETED, meta=json.dumps({"total_rows": 0}), finished_at="2026-01-01T00:00:02.000Z",
              state_sequence=2)
    detail = state_change(job(state_sequence=1), new, "results")
    assert (detail.currentState, detail.sequenceNumber, detail.meta) == ("completed", 2, None)
    assert detail.result.bucket == "results"


def test_failure_carries_its_error_and_sql_is_cut_to_500_characters() -> None:
    sql = "SELECT " + "1" * 1000
    old = job(request=JobRequest(sql=sql, limit=1))
    detail = state_change(old, job(JobStatus.FAILED, request=old.request, error_code="timeout",
                                   error_message="too slow"), "results")
    assert (detail.error_code, detail.error_message, detail.meta, detail.result) == ("timeout", "too slow", None, None)
    assert detail.sql == sql[:500]


def test_jobs_written_before_items_counted_transitions_still_get_increasing_numbers() -> None:
    assert state_change(None, job(), "r").sequenceNumber == 1
    assert state_change(job(), job(JobStatus.CANCELLED), "r").sequenceNumber == 2


def test_the_schema_file_is_the_models_schema() -> None:
    path = ROOT / "docs" / "events" / "job-state-change.schema.json"
    assert json.loads(path.read_text()) == event_schema()


def test_the_example_event_follows_the_schema() -> None:
    import jsonschema

    jsonschema.validate(json.loads((ROOT / "events" / "job_state_change.json").read_text()), event_schema())


def test_the_readme_shows_the_schema() -> None:
    readme = (ROOT / "README.md").read_text()
    assert json.dumps(event_schema(), indent=2) in readme
