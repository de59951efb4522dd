import bz2
import json

from queryall.logic.paging import encode_cursor
from queryall.logic.polling import job_response_body
from queryall.models.job import Job, JobRequest, JobStatus


def _job(**kw) -> Job:
    return Job(job_id="503a73be-9119-43ba-8e30-4f278f978d49", owner="key:x", created_at="t", submitted_at=1.0,
               expires_at=2, request=JobRequest(sql="SELECT 1", limit=1), **kw)


def test_processing_body() -> None:
    assert json.loads(job_response_body(_job(status=JobStatus.PROCESSING))) == {
        "data": {"job_id": "503a73be-9119-43ba-8e30-4f278f978d49", "status": "processing",
                 "progress": {"databases_total": None, "databases_done": 0, "databases_errored": 0,
                              "rows_so_far": 0}}}


def test_failed_body_carries_code_and_message() -> None:
    body = json.loads(job_response_body(_job(status=JobStatus.FAILED, error_code="generation_failed",
                                             error_message="Could not generate SQL: timeout")))
    assert body["data"] == {"job_id": "503a73be-9119-43ba-8e30-4f278f978d49", "status": "failed",
                            "error_code": "generation_failed", "error_message": "Could not generate SQL: timeout"}


def test_completed_body_splices_stored_json_exactly() -> None:
    rows = '[["acme",170141183460469231731687303715884105727],["b",12.345]]'
    job = _job(status=JobStatus.COMPLETED, columns='["_bucket","total"]', rows_bz2=bz2.compress(rows.encode()),
               meta='{"total_rows":3,"returned_rows":2,"truncated":true}')
    text = job_response_body(job)
    # Exact digits survive: the stored text is not decoded and re-encoded.
    assert "170141183460469231731687303715884105727" in text and "12.345" in text
    assert json.loads(text) == {"data": {"columns": ["_bucket", "total"],
                                         "rows": [["acme", 170141183460469231731687303715884105727], ["b", 12.345]]},
                                "meta": {"total_rows": 3, "returned_rows": 2, "truncated": True,
                                         "next_cursor": encode_cursor(job.job_id, 2)}}


def test_expiry_is_inclusive() -> None:
    job = _job(status=JobStatus.PROCESSING)
    assert not job.is_expired(1.999) and job.is_expired(2)
