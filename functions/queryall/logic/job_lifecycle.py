"""Every job state transition, in one place: processing -> completed | failed | cancelled.

Transitions are conditional on the job still processing, so a late or repeated step (a retried
aggregator, a failure handler after completion or cancellation) can never overwrite a final state.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from queryall.dal.jobs import JobStore
from queryall.models.job import Job, JobRequest, JobStatus
from queryall.observability import logger, metrics

MAX_ERROR_MESSAGE = 1000


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job(request: JobRequest, owner: str, now: float, ttl_seconds: int) -> Job:
    return Job(
        job_id=str(uuid.uuid4()),
        status=JobStatus.PROCESSING,
        owner=owner,
        created_at=iso(now),
        submitted_at=now,
        expires_at=int(now) + ttl_seconds,
        request=request,
        state_sequence=1,
    )


def complete(jobs: JobStore, job_id: str, columns: str, rows_bz2: bytes, meta: dict, now: float) -> bool:
    # ensure_ascii=False: the item was sized with the meta's UTF-8 text (escapes would take more bytes).
    done = jobs.finish(
        job_id,
        JobStatus.COMPLETED,
        {"columns": columns, "rows_bz2": rows_bz2,
         "meta": json.dumps(meta, separators=(",", ":"), ensure_ascii=False), "finished_at": iso(now)},
    )
    if done:
        metrics.add_metric(name="JobsCompleted", unit="Count", value=1)
    else:
        logger.warning("job was no longer processing; completed result not recorded")
    return done


def fail(jobs: JobStore, job_id: str, error_code: str, error_message: str, now: float) -> bool:
    message = error_message if len(error_message) <= MAX_ERROR_MESSAGE else error_message[:MAX_ERROR_MESSAGE] + "…"
    done = jobs.finish(
        job_id,
        JobStatus.FAILED,
        {"error_code": error_code, "error_message": message, "finished_at": iso(now)},
    )
    if done:
        metrics.add_metric(name="JobsFailed", unit="Count", value=1)
        logger.info("job failed", extra={"error_code": error_code, "error_message": message})
    return done


def cancel(jobs: JobStore, job_id: str, now: float) -> bool:
    done = jobs.finish(job_id, JobStatus.CANCELLED, {"finished_at": iso(now)})
    if done:
        metrics.add_metric(name="JobsCancelled", unit="Count", value=1)
        logger.info("job cancelled")
    return done
