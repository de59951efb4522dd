import uuid

import pytest

from queryall.errors import InvalidRequest
from queryall.logic.job_history import decode_cursor, encode_cursor, job_summary
from queryall.models.job import Job, JobRequest, JobStatus


def test_cursor_round_trip() -> None:
    position = ("2026-01-02T03:04:05.678Z", str(uuid.uuid4()))
    cursor = encode_cursor(position)
    assert "=" not in cursor and decode_cursor(cursor) == position


@pytest.mark.parametrize("cursor", ["zzz", "é", "W10", encode_cursor(("yesterday", str(uuid.uuid4()))),
                                    encode_cursor(("2026-01-02T03:04:05.678Z", "x"))])
def test_bad_cursor_is_invalid_request(cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        decode_cursor(cursor)


def test_summary_counts_buckets_cuts_long_sql_and_shows_progress_only_while_processing() -> None:
    def job(status: JobStatus) -> Job:
        return Job(job_id="j", status=status, owner="o", created_at="c", submitted_at=1.0, expires_at=2,
                   request=JobRequest(sql="SELECT " + "x" * 1000, buckets=["a", "b"], limit=5), databases_total=3)

    running = job_summary(job(JobStatus.PROCESSING))
    assert running.request.buckets == 2 and len(running.request.sql) == 501 and running.request.sql.endswith("…")
    assert running.progress is not None and running.progress.databases_total == 3
    assert job_summary(job(JobStatus.COMPLETED)).progress is None


def test_the_owner_index_projects_every_summary_attribute() -> None:
    from queryall.dal.jobs import OWNER_INDEX, SUMMARY_ATTRIBUTES
    from queryall_local.template import read_template
    from tests.conftest import ROOT

    table = read_template(ROOT / "template.yaml")["Resources"]["JobsTable"]["Properties"]
    index = next(i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == OWNER_INDEX)
    keys = {k["AttributeName"] for k in index["KeySchema"]} | {k["AttributeName"] for k in table["KeySchema"]}
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert set(SUMMARY_ATTRIBUTES) == keys | set(index["Projection"]["NonKeyAttributes"])
