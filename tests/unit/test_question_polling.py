"""A question job's generated SQL in the poll body (`data.sql`, as the reference's NL mode)."""

from __future__ import annotations

import bz2
import json

from queryall.logic.polling import job_response_body
from queryall.models.job import Job, JobRequest, JobStatus

SQL = "SELECT count(*) AS \"n\" FROM person WHERE note = 'é'"


def _job(request: JobRequest, **kw) -> Job:
    return Job(job_id="503a73be-9119-43ba-8e30-4f278f978d49", owner="key:x", created_at="t", submitted_at=1.0,
               expires_at=2, request=request, **kw)


def _completed(request: JobRequest) -> dict:
    job = _job(request, status=JobStatus.COMPLETED, columns='["_bucket","n"]', rows_bz2=bz2.compress(b'[["a",1]]'),
               meta='{"total_rows":1,"returned_rows":1,"truncated":false}')
    return json.loads(job_response_body(job))


def test_a_completed_question_job_shows_the_sql_that_ran() -> None:
    body = _completed(JobRequest(question="how many?", sql=SQL, limit=1))
    assert body["data"] == {"columns": ["_bucket", "n"], "rows": [["a", 1]], "sql": SQL}


def test_sql_mode_bodies_are_unchanged() -> None:
    assert "sql" not in _completed(JobRequest(sql=SQL, limit=1))["data"]


def test_a_processing_question_job_shows_its_sql_once_generated() -> None:
    waiting = json.loads(job_response_body(_job(JobRequest(question="q", limit=1), status=JobStatus.PROCESSING)))
    assert "sql" not in waiting["data"]
    running = json.loads(job_response_body(_job(JobRequest(question="q", sql=SQL, limit=1),
                                                status=JobStatus.PROCESSING)))
    assert running["data"]["sql"] == SQL
