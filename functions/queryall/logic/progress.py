"""Live progress of a job: batches report finished tenants, a few writes per batch, not one per tenant."""

from __future__ import annotations

import time
from collections.abc import Callable

from queryall.dal.job_progress import JobProgressCounters, ProgressUpdateFailed, Update
from queryall.models.workflow import MAX_PROGRESS_INTERVAL_SECONDS, MIN_PROGRESS_INTERVAL_SECONDS, TenantOutcome
from queryall.observability import logger

# A batch adds its finished tenants to the job's counters at most every `interval` (and once at its
# end): progress stays live while a batch of 25 fast tenants costs one write. Every batch of a job
# writes the same item, and DynamoDB takes about 1,000 writes a second on one item's partition (and
# UpdateItems on one item queue behind each other), so with many batches running at once the interval
# grows to keep the job's item at about this many progress writes a second.
JOB_PROGRESS_WRITES_PER_SECOND = 50


def flush_interval(concurrent_batches: int) -> float:
    """Seconds between one batch's progress writes when `concurrent_batches` run at once (beyond ~3,000
    at once, a batch writes its progress only when it ends)."""
    spread = concurrent_batches / JOB_PROGRESS_WRITES_PER_SECOND
    return min(MAX_PROGRESS_INTERVAL_SECONDS, max(MIN_PROGRESS_INTERVAL_SECONDS, spread))


class JobNoLongerProcessing(Exception):
    """The job was cancelled (or otherwise finished) while the batch ran: its work is no longer wanted."""


class BatchProgress:
    def __init__(
        self,
        counters: JobProgressCounters,
        job_id: str,
        interval: float = MIN_PROGRESS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counters = counters
        self._job_id = job_id
        self._interval = interval
        self._clock = clock
        self._last_flush = clock()
        self._done = self._errored = self._rows = 0
        # No job item (a step invoked on its own, or the job expired): nothing to report progress to.
        self._no_job = False

    def tenant_finished(self, outcome: TenantOutcome) -> None:
        """Count one tenant; raises JobNoLongerProcessing when a write finds the job stopped."""
        self._done += 1
        self._errored += int(outcome.status == "error")
        self._rows += outcome.rows
        if self._clock() - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Add what is counted so far to the job. A failed write keeps the counts for the next one: progress
        is best effort and never fails the batch."""
        if self._done == 0 or self._no_job:
            return
        self._last_flush = self._clock()
        try:
            update = self._counters.add(self._job_id, self._done, self._errored, self._rows)
        except ProgressUpdateFailed as error:
            logger.warning("progress not recorded; will retry with the next update", extra={"error": str(error)})
            return
        if update is Update.NOT_PROCESSING:
            raise JobNoLongerProcessing(self._job_id)
        self._no_job = update is Update.NO_JOB
        self._done = self._errored = self._rows = 0


def record_plan(counters: JobProgressCounters, job_id: str, total: int, missing: int) -> None:
    try:
        counters.set_total(job_id, total, missing)
    except ProgressUpdateFailed:
        # Informative only: the final counts, total included, are recorded before the job completes.
        logger.warning("could not record the planned total", exc_info=True)


def record_final(counters: JobProgressCounters, job_id: str, total: int, errored: int, rows: int) -> None:
    try:
        counters.set_final(job_id, total, errored, rows)
    except ProgressUpdateFailed:
        logger.warning("could not record the final progress counts", exc_info=True)
