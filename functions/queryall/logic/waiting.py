"""Waiting for many jobs at once: hold the request until every job has finished, or the timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from queryall.dal.jobs import JobStore
from queryall.errors import InvalidRequest
from queryall.logic import json_input
from queryall.logic.job_watchdog import is_overdue, settle_overdue
from queryall.logic.polling import is_job_id
from queryall.logic.response_size import RESPONSE_BUDGET
from queryall.models.job import Job, JobStatus

MAX_JOB_IDS = 100
DEFAULT_TIMEOUT_SECONDS = 20.0
MAX_TIMEOUT_SECONDS = 25.0  # the HTTP API gives up on an integration after 30 s
# Reads start 25 ms apart and back off to 100 ms within ~0.3 s: a small job (done a few hundred ms after
# its submit) is seen within a short interval of its finish, any finish within ~100 ms (the answer is due
# within 300 ms), and even a 25 s wait makes ~250 small reads of processing jobs, never a hot loop.
FIRST_INTERVAL_SECONDS = 0.025
BACKOFF = 1.3
MAX_INTERVAL_SECONDS = 0.1
# A Lambda response carries at most 6 MB; finished jobs past RESPONSE_BUDGET are left for the next wait.
# Finished jobs are read whole (with their results) a few at a time, so reading stops with the budget.
_FULL_READ_CHUNK = 10
_COMPACT = (",", ":")


def parse_job_ids(values: list[str]) -> list[str]:
    """The job ids of every `job_ids` query value: a JSON array (`["a","b"]`), or plain ids, repeated or
    comma-separated. Duplicates collapse to their first occurrence."""
    ids: list[str] = []
    for value in values:
        text = value.strip()
        if text.startswith("["):
            parsed = json_input.loads(text, source='job_ids (a JSON array: ["id1","id2"])')
            if not all(isinstance(item, str) for item in parsed):
                raise InvalidRequest("job_ids: the JSON array must hold job id strings")
            ids.extend(item.strip() for item in parsed)
        else:
            ids.extend(part.strip() for part in text.split(","))
    unique = list(dict.fromkeys(job_id for job_id in ids if job_id))
    if not unique:
        raise InvalidRequest("job_ids: at least one job id is required")
    if len(unique) > MAX_JOB_IDS:
        raise InvalidRequest(f"job_ids: at most {MAX_JOB_IDS} job ids per request, got {len(unique)}")
    return unique


def wait_for_jobs(
    jobs: JobStore,
    job_ids: list[str],
    owner: str,
    timeout_seconds: float,
    render: Callable[[Job], str],
    *,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    max_job_seconds: float | None = None,
) -> str:
    """The wait response body (JSON text) once every job has finished or `timeout_seconds` passed.

    Only the caller's own, unexpired jobs are waited for; any other id is reported unknown. While waiting
    only job summaries are read; each finished job is read whole once, at the end, and rendered by
    `render` (the poll response body, JSON text)."""
    deadline = clock() + timeout_seconds
    unknown = {job_id for job_id in job_ids if not is_job_id(job_id)}
    pending = [job_id for job_id in job_ids if job_id not in unknown]
    finished: set[str] = set()
    processing: dict[str, Job] = {}
    interval = FIRST_INTERVAL_SECONDS
    while True:
        found = jobs.get_many(pending, summary=True) if pending else {}
        read_at = now()
        processing = {}
        for job_id in pending:
            job = found.get(job_id)
            if job is None or job.owner != owner or job.is_expired(read_at):
                unknown.add(job_id)
            elif max_job_seconds is not None and is_overdue(job, read_at, max_job_seconds):
                settle_overdue(jobs, job, read_at, max_job_seconds)  # failed now: read whole with the finished
                finished.add(job_id)
            elif job.status is JobStatus.PROCESSING:
                processing[job_id] = job
            else:
                finished.add(job_id)
        pending = list(processing)
        left = deadline - clock()
        if not pending or left <= 0:
            break
        sleep(min(interval, left))
        interval = min(MAX_INTERVAL_SECONDS, interval * BACKOFF)

    entries, postponed = _finished_entries(jobs, [i for i in job_ids if i in finished], owner, now(), unknown,
                                           render)
    rest = json.dumps({
        "remaining_job_ids": [i for i in job_ids if i in processing or i in postponed],
        "unknown_job_ids": [i for i in job_ids if i in unknown],
        "progress": {job_id: job.progress().model_dump() for job_id, job in processing.items()},
        "timed_out": bool(processing),
    }, separators=_COMPACT)
    return '{"data":{"jobs":[' + ",".join(entries) + "]," + rest[1:] + "}"


def _finished_entries(
    jobs: JobStore, job_ids: list[str], owner: str, now: float, unknown: set[str], render: Callable[[Job], str]
) -> tuple[list[str], set[str]]:
    """Each finished job's entry (JSON text) while they fit the response budget, and the ids that did not."""
    entries: list[str] = []
    postponed: set[str] = set()
    used = 0
    for start in range(0, len(job_ids), _FULL_READ_CHUNK):
        chunk = job_ids[start: start + _FULL_READ_CHUNK]
        if postponed:
            postponed.update(chunk)
            continue
        found = jobs.get_many(chunk)
        for job_id in chunk:
            job = found.get(job_id)
            if job is None or job.owner != owner or job.is_expired(now):  # expired since it finished
                unknown.add(job_id)
                continue
            entry = _entry(job, render(job))
            # Measured as the Lambda response will carry it: inside a JSON string, escaped.
            size = len(json.dumps(entry))
            if postponed or (entries and used + size > RESPONSE_BUDGET):
                postponed.add(job_id)
                continue
            entries.append(entry)
            used += size
    return entries, postponed


def _entry(job: Job, poll_body: str) -> str:
    """job_id and status, then the poll response's own members, spliced without re-encoding the result."""
    head = json.dumps({"job_id": job.job_id, "status": job.status.value}, separators=_COMPACT)
    return head[:-1] + "," + poll_body[1:]
