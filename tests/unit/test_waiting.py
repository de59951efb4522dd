"""The wait rules with a fake job store and a fake clock: no DynamoDB, no real sleeping."""

from __future__ import annotations

import json
import uuid

import pytest

from queryall.errors import InvalidRequest
from queryall.logic import waiting
from queryall.logic.waiting import parse_job_ids, wait_for_jobs
from queryall.models.job import Job, JobRequest, JobStatus

OWNER = "key:me"


def job(status: JobStatus = JobStatus.PROCESSING, owner: str = OWNER, expires_at: int = 10_000, **kw) -> Job:
    return Job(job_id=str(uuid.uuid4()), status=status, owner=owner, created_at="t", submitted_at=1.0,
               expires_at=expires_at, request=JobRequest(sql="SELECT 1", limit=1), **kw)


class FakeJobs:
    """Jobs whose status changes at given (fake) times; records every read."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        self.finish_at: dict[str, tuple[float, JobStatus]] = {}
        self.reads: list[tuple[float, list[str], bool]] = []

    def add(self, item: Job, finishes_at: float | None = None, status: JobStatus = JobStatus.COMPLETED) -> str:
        self.jobs[item.job_id] = item
        if finishes_at is not None:
            self.finish_at[item.job_id] = (finishes_at, status)
        return item.job_id

    def get_many(self, job_ids: list[str], *, summary: bool = False) -> dict[str, Job]:
        self.reads.append((self.clock.now, list(job_ids), summary))
        found = {}
        for job_id in job_ids:
            if job_id in self.jobs:
                item = self.jobs[job_id]
                when = self.finish_at.get(job_id)
                if when is not None and self.clock.now >= when[0]:
                    item = item.model_copy(update={"status": when[1]})
                found[job_id] = item
        return found


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def render(item: Job) -> str:
    return json.dumps({"data": {"job_id": item.job_id, "status": item.status.value, "marker": 1}})


def run(jobs: FakeJobs, clock: FakeClock, ids: list[str], timeout: float, owner: str = OWNER) -> dict:
    text = wait_for_jobs(jobs, ids, owner, timeout, render, clock=lambda: clock.now, now=lambda: clock.now,
                         sleep=clock.sleep)
    return json.loads(text)["data"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jobs(clock: FakeClock) -> FakeJobs:
    return FakeJobs(clock)


def test_returns_when_the_last_job_finishes_with_every_entry(jobs: FakeJobs, clock: FakeClock) -> None:
    first = jobs.add(job(), finishes_at=0.5)
    second = jobs.add(job(), finishes_at=2.0, status=JobStatus.FAILED)
    data = run(jobs, clock, [second, first], timeout=20)
    assert data["timed_out"] is False and data["remaining_job_ids"] == [] and data["unknown_job_ids"] == []
    # Entries in the order asked, job_id and status first, then the poll body's own members.
    assert [(e["job_id"], e["status"]) for e in data["jobs"]] == [(second, "failed"), (first, "completed")]
    assert data["jobs"][0]["data"] == {"job_id": second, "status": "failed", "marker": 1}
    # Seen within one read interval of the last finish.
    assert 2.0 <= clock.now <= 2.0 + waiting.MAX_INTERVAL_SECONDS


def test_reads_back_off_and_never_spin(jobs: FakeJobs, clock: FakeClock) -> None:
    jobs.add(job())
    run(jobs, clock, list(jobs.jobs), timeout=25)
    assert clock.sleeps[0] == pytest.approx(waiting.FIRST_INTERVAL_SECONDS)
    assert all(b >= a for a, b in zip(clock.sleeps[:-2], clock.sleeps[1:-1], strict=True))  # grows, then flat
    assert all(s >= waiting.FIRST_INTERVAL_SECONDS for s in clock.sleeps[:-1])
    assert max(clock.sleeps) == pytest.approx(waiting.MAX_INTERVAL_SECONDS)
    assert len(jobs.reads) <= 25 / waiting.MAX_INTERVAL_SECONDS + 5
    assert all(summary for _, _, summary in jobs.reads)  # processing jobs are never read whole


def test_timeout_reports_remaining_ids_with_progress(jobs: FakeJobs, clock: FakeClock) -> None:
    done = jobs.add(job(), finishes_at=0.0)
    running = jobs.add(job(databases_total=10, databases_done=4, databases_errored=1, rows_so_far=7))
    data = run(jobs, clock, [running, done], timeout=1.5)
    assert clock.now == pytest.approx(1.5)
    assert data["timed_out"] is True
    assert data["remaining_job_ids"] == [running]
    assert [e["job_id"] for e in data["jobs"]] == [done]
    assert data["progress"] == {running: {"databases_total": 10, "databases_done": 4, "databases_errored": 1,
                                          "rows_so_far": 7}}


def test_timeout_zero_reads_once(jobs: FakeJobs, clock: FakeClock) -> None:
    running = jobs.add(job())
    data = run(jobs, clock, [running], timeout=0)
    assert data["timed_out"] is True and data["remaining_job_ids"] == [running]
    assert len(jobs.reads) == 1 and clock.sleeps == []


def test_unknown_malformed_expired_and_others_jobs(jobs: FakeJobs, clock: FakeClock) -> None:
    mine = jobs.add(job(), finishes_at=0.0)
    theirs = jobs.add(job(owner="key:other"), finishes_at=0.0)
    expired = jobs.add(job(expires_at=0), finishes_at=0.0)
    missing = str(uuid.uuid4())
    data = run(jobs, clock, ["not-an-id", missing, theirs, expired, mine], timeout=5)
    assert data["unknown_job_ids"] == ["not-an-id", missing, theirs, expired]
    assert [e["job_id"] for e in data["jobs"]] == [mine]
    assert data["timed_out"] is False
    assert all("not-an-id" not in ids for _, ids, _ in jobs.reads)  # malformed ids are never looked up


def test_finished_jobs_past_the_response_budget_are_left_for_the_next_wait(
    jobs: FakeJobs, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(waiting, "RESPONSE_BUDGET", 400)
    ids = [jobs.add(job(), finishes_at=0.0) for _ in range(5)]
    data = run(jobs, clock, ids, timeout=5)
    returned = [e["job_id"] for e in data["jobs"]]
    assert 1 <= len(returned) < 5
    assert returned + data["remaining_job_ids"] == ids  # the rest, in order, to ask for again
    assert data["timed_out"] is False and data["progress"] == {}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (['["a","b"]'], ["a", "b"]),
        (["a", "b", "a"], ["a", "b"]),
        (["a,b", " c "], ["a", "b", "c"]),
        (['["a"]', '["b","a"]'], ["a", "b"]),
        (['[" a ", ""]'], ["a"]),
    ],
)
def test_job_ids_forms(values: list[str], expected: list[str]) -> None:
    assert parse_job_ids(values) == expected


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ([], "at least one"),
        ([""], "at least one"),
        (["[]"], "at least one"),
        (['["a",'], "JSON array"),
        (["[1, 2]"], "strings"),
        ([",".join(str(i) for i in range(101))], "at most 100"),
    ],
)
def test_bad_job_ids(values: list[str], needle: str) -> None:
    with pytest.raises(InvalidRequest, match=needle):
        parse_job_ids(values)


def test_a_hundred_ids_with_duplicates_are_fine() -> None:
    assert len(parse_job_ids([str(i) for i in range(100)] * 2)) == 100


def test_another_callers_processing_job_is_unknown_not_waited_for(jobs: FakeJobs, clock: FakeClock) -> None:
    """The owner check in the wait loop itself: a job of another caller that is still processing is
    neither reported with its progress nor waited for."""
    theirs = jobs.add(job(owner="key:other"))  # processing, never finishes
    mine = jobs.add(job(), finishes_at=0.2)
    data = run(jobs, clock, [theirs, mine], 5.0)
    assert data["unknown_job_ids"] == [theirs]
    assert data["remaining_job_ids"] == []
    assert data["progress"] == {}
    assert data["timed_out"] is False
    assert [entry["job_id"] for entry in data["jobs"]] == [mine]
    assert clock.now < 1.0  # returned when my job finished, not at the timeout
