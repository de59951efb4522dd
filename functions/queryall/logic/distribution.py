"""Inline or distributed Map: a small plan travels in the execution state, a large one as items in S3.

Step Functions caps a state at 256 KB and runs at most 40 inline Map iterations at once. Above
`threshold` targets the plan keeps no batches; its targets become MapItems in S3, which a distributed
Map reads (ItemReader) and groups `batch_size` at a time (ItemBatcher) -- the same batches, in the same
order, as the inline plan, so batch indexes, partial results and the combined result are identical.
"""

from __future__ import annotations

import json

from queryall.dal.job_documents import PLAN_REPORTS, JobDocuments
from queryall.dal.map_items import MapItemStore
from queryall.logic.progress import flush_interval
from queryall.models.workflow import Batch, MapItem, Plan

# A batch pays a fixed cost (an invocation, a sandboxed DuckDB, its partial and summary writes, a few
# state transitions): below this many tenants that cost outweighs the parallelism gained.
MIN_BATCH_SIZE = 10
# What a plan may carry in the state, for its targets' names and again for its missing and skipped
# tenants: with the largest SQL (100,000 characters) and the batch outcomes the state stays below
# Step Functions' 256 KB.
INLINE_PLAN_BYTES = 48 * 1024


def batch_size_for(targets: int, max_batch_size: int, max_concurrency: int) -> int:
    """Spread the targets over every concurrent slot, MIN_BATCH_SIZE..max_batch_size tenants a batch.

    One wave of batches is the fastest plan: 1,000 tenants with 40 slots are 40 batches of 25, and on
    a 2-core machine (the local stack runs 2 at a time) 2 batches of max_batch_size each, not 40 of 25.
    """
    spread = -(-targets // max(1, max_concurrency))
    return max(1, min(max_batch_size, max(MIN_BATCH_SIZE, spread)))


def distribute(plan: Plan, job_id: str, *, threshold: int, max_batch_size: int, max_concurrency: int,
               distributed_max_concurrency: int, items: MapItemStore, documents: JobDocuments | None = None) -> Plan:
    """The plan the state machine gets: batches cut for the Map that will run them, in the state up to
    `threshold` targets (inline Map), in S3 above it (distributed Map) or when their names alone would
    take more than INLINE_PLAN_BYTES. Missing and skipped tenants beyond INLINE_PLAN_BYTES go to S3 too,
    so the plan fits the state whatever the request."""
    plan = _reports_out_of_state(plan, job_id, documents)
    targets = [bucket for batch in plan.batches for bucket in batch.buckets]
    distributed = len(targets) > threshold or _json_size(targets) > INLINE_PLAN_BYTES
    concurrency = distributed_max_concurrency if distributed else max_concurrency
    size = batch_size_for(len(targets), max_batch_size, concurrency)
    batches = [Batch(batch_index=index, buckets=targets[start: start + size])
               for index, start in enumerate(range(0, len(targets), size))]
    interval = flush_interval(min(concurrency, len(batches)))
    if not distributed:
        return plan.model_copy(update={"batches": batches, "batch_size": size, "max_concurrency": concurrency,
                                       "progress_interval_seconds": interval})
    key = items.put(job_id, [MapItem(batch_index=batch.batch_index, bucket=bucket)
                             for batch in batches for bucket in batch.buckets])
    return plan.model_copy(update={"mode": "distributed", "batches": [], "batch_size": size,
                                   "max_concurrency": concurrency, "progress_interval_seconds": interval,
                                   "items_bucket": items.bucket,
                                   "items_key": key})


def _json_size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _reports_out_of_state(plan: Plan, job_id: str, documents: JobDocuments | None) -> Plan:
    reports = {"missing": plan.missing, "skipped": plan.skipped}
    if _json_size(reports) <= INLINE_PLAN_BYTES:
        return plan
    if documents is None:
        raise ValueError("the plan's reports need the job documents store")
    documents.put(job_id, PLAN_REPORTS, reports)
    return plan.model_copy(update={"missing": {}, "skipped": {}, "reports_stored": True,
                                   "missing_count": len(plan.missing)})


def planned_batches(plan: Plan, items: MapItemStore, job_id: str = "", documents: JobDocuments | None = None) -> Plan:
    """The plan with its batches and reports, read back from S3 where they were kept (for the aggregator)."""
    if plan.reports_stored:
        if documents is None or not job_id:
            raise ValueError("the plan's reports are stored: the job and its documents store are required")
        reports = documents.get(job_id, PLAN_REPORTS)
        plan = plan.model_copy(update={"missing": reports["missing"], "skipped": reports["skipped"],
                                       "reports_stored": False})
    if plan.mode != "distributed" or plan.items_key is None:
        return plan
    batches: dict[int, list[str]] = {}
    for item in items.get(plan.items_key):
        batches.setdefault(item.batch_index, []).append(item.bucket)
    return plan.model_copy(update={"batches": [Batch(batch_index=i, buckets=b) for i, b in sorted(batches.items())]})
