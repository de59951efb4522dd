"""Events out: one "Query-All Job State Change" event per change of a job's status.

Why from the jobs table's stream (a small consumer Lambda) and not from the workflow steps: the job
item is the single record of a job's state, written by many writers (submit, aggregate, fail_job,
cancel, the watchdog). Its stream carries every write that changed the item, for 24 hours, in order
per item, and the event source mapping retries a failing batch (bisecting it down to the bad record)
before parking its position on a dead-letter queue. So an event is never lost once the item was
written: a put that fails (EventBridge throttled or down) fails the record, and the record is retried
until EventBridge takes it. Emitting from each writer instead would lose the event whenever the writer
dies between its DynamoDB write and its PutEvents, and would need a reconciler to find those.

The price is at-least-once: a retried batch puts its events again. Consumers dedupe on `job_id` +
`sequenceNumber` (the job item's `state_sequence`, incremented by every transition).
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from queryall.dal.result_files import RESULT_FILES, result_key
from queryall.models.job import Job, JobStatus
from queryall.models.job_event import MAX_EVENT_SQL, JobMetaSummary, JobStateChange, ResultLocation
from queryall.observability import logger

# The sequence of a job written before items counted their transitions.
_SEQUENCE_WITHOUT_COUNTER = {JobStatus.PROCESSING: 1}
_FINAL_SEQUENCE_WITHOUT_COUNTER = 2


def state_change(old: Job | None, new: Job | None, results_bucket: str) -> JobStateChange | None:
    """The event detail for a write of a job item that changed its status (its creation included); None
    for every other write (progress counters, generated SQL, deletion by TTL)."""
    if new is None or (old is not None and old.status is new.status):
        return None
    sql = new.request.sql
    detail = JobStateChange(
        job_id=new.job_id,
        owner=new.owner,
        currentState=new.status,
        previousState=old.status if old is not None else None,
        sequenceNumber=_sequence(new),
        submitted_at=new.created_at,
        finished_at=new.finished_at,
        sql=sql if sql is None or len(sql) <= MAX_EVENT_SQL else sql[:MAX_EVENT_SQL],
    )
    if new.status is JobStatus.FAILED:
        detail.error_code = new.error_code
        detail.error_message = new.error_message
    if new.status is JobStatus.COMPLETED:
        detail.meta = _meta_summary(new)
        detail.result = ResultLocation(bucket=results_bucket,
                                       keys={name: result_key(new.job_id, name) for name in RESULT_FILES})
    return detail


def _meta_summary(job: Job) -> JobMetaSummary | None:
    # Aggregate always writes every count, but a job completed with less (by hand, or by an older
    # version) must not become a record that fails on every retry and holds back its stream shard:
    # its event goes out with `meta: null` (consumers can poll the job), and the gap is logged.
    meta = json.loads(job.meta or "{}")
    try:
        return JobMetaSummary.model_validate({name: meta.get(name) for name in JobMetaSummary.model_fields})
    except ValidationError:
        logger.warning("completed job's meta lacks its counts; event without meta", extra={"job_id": job.job_id})
        return None


def _sequence(job: Job) -> int:
    if job.state_sequence is not None:
        return job.state_sequence
    return _SEQUENCE_WITHOUT_COUNTER.get(job.status, _FINAL_SEQUENCE_WITHOUT_COUNTER)
