"""Batch progress: few writes, nothing lost when a write fails, a stop when the job is no longer processing."""

from __future__ import annotations

import pytest

from queryall.dal.job_progress import ProgressUpdateFailed, Update
from queryall.logic.progress import BatchProgress, JobNoLongerProcessing
from queryall.models.job import Job, JobRequest, JobStatus
from queryall.models.workflow import TenantOutcome


class FakeCounters:
    def __init__(self) -> None:
        self.adds: list[tuple[int, int, int]] = []
        self.fail_next = False
        self.answer = Update.APPLIED
        self.calls = 0

    def add(self, job_id: str, done: int, errored: int, rows: int) -> Update:
        self.calls += 1
        if self.fail_next:
            self.fail_next = False
            raise ProgressUpdateFailed("throttled")
        if self.answer is Update.APPLIED:
            self.adds.append((done, errored, rows))
        return self.answer


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def ok(rows: int = 2) -> TenantOutcome:
    return TenantOutcome(bucket="b", status="ok", rows=rows)


def test_fast_tenants_cost_one_write_per_batch() -> None:
    counters, clock = FakeCounters(), Clock()
    progress = BatchProgress(counters, "job", interval=0.2, clock=clock)
    for _ in range(25):
        clock.now += 0.001
        progress.tenant_finished(ok())
    progress.tenant_finished(TenantOutcome(bucket="bad", status="error"))
    progress.flush()
    assert counters.adds == [(26, 1, 50)]


def test_slow_tenants_are_reported_as_they_finish() -> None:
    counters, clock = FakeCounters(), Clock()
    progress = BatchProgress(counters, "job", interval=0.2, clock=clock)
    for _ in range(3):
        clock.now += 1.0
        progress.tenant_finished(ok(rows=1))
    progress.flush()  # nothing left: no empty write
    assert counters.adds == [(1, 0, 1)] * 3


def test_a_failed_write_keeps_its_counts_for_the_next() -> None:
    counters, clock = FakeCounters(), Clock()
    progress = BatchProgress(counters, "job", interval=0.2, clock=clock)
    counters.fail_next = True
    clock.now += 1.0
    progress.tenant_finished(ok())
    clock.now += 1.0
    progress.tenant_finished(ok())
    assert counters.adds == [(2, 0, 4)]


def test_a_job_no_longer_processing_stops_the_batch() -> None:
    counters, clock = FakeCounters(), Clock()
    progress = BatchProgress(counters, "job", interval=0.2, clock=clock)
    counters.answer = Update.NOT_PROCESSING
    clock.now += 1.0
    with pytest.raises(JobNoLongerProcessing):
        progress.tenant_finished(ok())


def test_without_a_job_item_the_batch_goes_on_and_stops_writing() -> None:
    counters, clock = FakeCounters(), Clock()
    progress = BatchProgress(counters, "job", interval=0.2, clock=clock)
    counters.answer = Update.NO_JOB  # a step invoked on its own (sam local invoke), or an expired job
    for _ in range(3):
        clock.now += 1.0
        progress.tenant_finished(ok())
    progress.flush()
    assert counters.calls == 1


def test_shown_progress_never_exceeds_the_total() -> None:
    job = Job(job_id="j", status=JobStatus.PROCESSING, owner="o", created_at="t", submitted_at=1.0, expires_at=2,
              request=JobRequest(limit=1), databases_total=10, databases_done=12, databases_errored=11,
              rows_so_far=5)
    assert job.progress().model_dump() == {"databases_total": 10, "databases_done": 10, "databases_errored": 10,
                                           "rows_so_far": 5}
