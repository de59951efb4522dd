"""Combining the batches' partial results into the completed job item."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

from queryall.dal.job_documents import REPORTED_TENANTS, JobDocuments
from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.jobs import JobStore
from queryall.dal.map_items import MapItemStore
from queryall.dal.partial_results import PartialResultStore
from queryall.dal.result_files import ResultStore
from queryall.logic import job_lifecycle
from queryall.logic.combined_result import merge_partials
from queryall.logic.distribution import planned_batches
from queryall.logic.item_fit import ITEM_BUDGET, fit_compressed_rows, item_size
from queryall.logic.json_rows import column_types
from queryall.logic.partial_verification import verified_partials
from queryall.logic.progress import record_final
from queryall.logic.response_size import LINKS_RESERVE, RESPONSE_BUDGET, escaped_size
from queryall.logic.result_export import export_result
from queryall.logic.result_links import sql_member
from queryall.logic.result_pages import rows_within
from queryall.logic.step_errors import describe_step_error
from queryall.models.job import Job
from queryall.models.workflow import DEADLINE_EXCEEDED, AggregateInput, Batch, TenantOutcome
from queryall.observability import logger, metrics

# The errors map may take at most this much of the item; longer messages are cut.
MAX_ERRORS_BYTES = 200 * 1024
# Beyond it (thousands of tenants errored or skipped) the reports go to S3, and poll returns them: they may
# then take this much of a response (still far below Lambda's 6 MB), longer messages cut.
MAX_STORED_REPORTS_BYTES = 2 * 1024 * 1024
# What the item's meta holds in their place (`logic.result_links` puts them back).
_STORED_REPORTS = {"skipped": None, "errors": None, "reports_stored": True}
ROWS_ATTRIBUTE = "rows_bz2"


class CombinedResult:
    """Every tenant's outcome plus the merged rows, ready to be written to the job item."""

    def __init__(self, outcomes: list[TenantOutcome], table: pa.Table) -> None:
        self.outcomes = outcomes
        self.table = table

    @property
    def columns(self) -> list[str]:
        return self.table.column_names

    @functools.cached_property
    def schema(self) -> list[dict]:
        return column_types(self.table)

    def meta(self, execution_time_seconds: float, returned_rows: int) -> dict:
        queried = sorted(o.bucket for o in self.outcomes if o.status == "ok")
        skipped = sorted(o.bucket for o in self.outcomes if o.status == "skipped")
        errors = {o.bucket: o.message or "error" for o in sorted(self.outcomes, key=lambda o: o.bucket)
                  if o.status == "error"}
        return {
            "schema": self.schema,
            "databases_queried": len(queried),
            "databases_skipped": len(skipped),
            "databases_errored": len(errors),
            "total_rows": self.table.num_rows,
            "execution_time_seconds": round(execution_time_seconds, 3),
            "skipped": skipped,
            "errors": errors,
            "returned_rows": returned_rows,
            "truncated": returned_rows < self.table.num_rows,
            # Only when true: a job that ended in time has the meta it always had.
            **({"deadline_exceeded": True} if DEADLINE_EXCEEDED in errors.values() else {}),
        }


# Batches are read concurrently: at thousands of batches S3 latency, not CPU, bounds this step.
READ_WORKERS = 16


def collect(inputs: AggregateInput, partials: PartialResultStore) -> CombinedResult:
    outcomes = [TenantOutcome(bucket=b, status="error", message=m) for b, m in inputs.plan.missing.items()]
    outcomes += [TenantOutcome(bucket=b, status="skipped", message=m) for b, m in inputs.plan.skipped.items()]
    failed = {o.batch_index: o.error for o in inputs.batch_outcomes if o.error is not None}

    def read(batch: Batch) -> tuple[list[TenantOutcome], list[pa.Table]]:
        summary = None if batch.batch_index in failed else partials.get_summary(inputs.job_id, batch.batch_index)
        if summary is None:
            error = failed.get(batch.batch_index)
            message = describe_step_error(error) if error else "Batch produced no result"
            return [TenantOutcome(bucket=b, status="error", message=message) for b in batch.buckets], []
        return verified_partials(summary.outcomes, [pa.ipc.open_stream(partials.get_partial(key)).read_all()
                                                    for key in summary.partial_keys])

    tables: list[pa.Table] = []
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        for batch_outcomes, batch_tables in pool.map(read, inputs.plan.batches):  # map keeps batch order
            outcomes.extend(batch_outcomes)
            tables.extend(batch_tables)
    return CombinedResult(outcomes, merge_partials(tables))


def _item_without_rows(job: Job, columns: str, meta: dict, now: float) -> dict:
    """The completed job item as DynamoDB will hold it, minus the rows (for sizing)."""
    values = job.model_dump(mode="json", exclude_none=True)
    values.update(
        status="completed", columns=columns, finished_at="2000-01-01T00:00:00.000Z",
        meta=json.dumps(meta, separators=(",", ":"), ensure_ascii=False),
        submitted_at=Decimal(str(job.submitted_at)),
    )
    return values


def _shorten_errors(meta: dict, budget: int) -> dict:
    """Keep the errors map within budget bytes by cutting long messages (thousands of failing tenants)."""
    errors = meta["errors"]
    size = len(json.dumps(errors, ensure_ascii=False).encode())
    if size <= budget:
        return meta
    per_message = max(40, budget // max(1, len(errors)) - 80)
    shortened = {b: m if len(m) <= per_message else m[:per_message] + "…" for b, m in errors.items()}
    return {**meta, "errors": shortened}


# The item is sized as if the job's execution time had this many digits, so that the time can be set
# once the job is done (`CompletedItem.finished`) after its rows were fitted; 115 days is longer than
# any job runs.
_LONGEST_EXECUTION_SECONDS = 9_999_999.999


@dataclass(frozen=True)
class CompletedItem:
    columns: str  # JSON text of the column names
    rows_bz2: bytes  # bzip2 of the JSON text of the rows kept, a prefix of the result
    meta: dict

    def finished(self, execution_time_seconds: float) -> CompletedItem:
        """The item with the job's execution time as measured when it completes."""
        seconds = round(min(execution_time_seconds, _LONGEST_EXECUTION_SECONDS), 3)
        return CompletedItem(self.columns, self.rows_bz2, self.meta | {"execution_time_seconds": seconds})


def _reports_size(meta: dict) -> int:
    return len(json.dumps([meta["skipped"], meta["errors"]], ensure_ascii=False).encode())


def completed_item(
    job: Job, result: CombinedResult, execution_time_seconds: float, now: float, *,
    item_budget: int = ITEM_BUDGET, response_budget: int = RESPONSE_BUDGET, documents: JobDocuments | None = None,
) -> CompletedItem:
    """The largest prefix of the rows that keeps both the item under ``item_budget`` (compressed) and a
    poll response under ``response_budget`` (decompressed, escaped), with the columns and meta.

    When the skipped and errored tenants take more than MAX_ERRORS_BYTES even with their messages cut
    (thousands of them), they are written to S3 through ``documents`` (``reported-tenants.json``, with
    messages cut to MAX_STORED_REPORTS_BYTES) and the item's meta holds ``null`` in their place and
    ``reports_stored``: poll puts them back (`logic.result_links`). The item then stays small whatever the
    request, and the job list never reads them."""
    columns = json.dumps(result.columns, separators=(",", ":"), ensure_ascii=False)
    total = result.table.num_rows
    # Sized as if every row were kept: `returned_rows` can only get fewer digits and `truncated: true` is
    # shorter than false, so the meta finally written is never larger than the one sized here; nor is
    # an execution time set later by `finished`.
    full_meta = result.meta(_LONGEST_EXECUTION_SECONDS, total)
    sized_meta = _shorten_errors(full_meta, MAX_ERRORS_BYTES)
    stored: dict | None = None
    if documents is not None and _reports_size(sized_meta) > MAX_ERRORS_BYTES:
        sized_meta = _shorten_errors(full_meta, MAX_STORED_REPORTS_BYTES)
        stored = {"skipped": sized_meta["skipped"], "errors": sized_meta["errors"]}
        documents.put(job.job_id, REPORTED_TENANTS, stored)
    empty_body = (f'{{"data":{{"columns":{columns},"rows":[]{sql_member(job)}}},'
                  f'"meta":{json.dumps(sized_meta, ensure_ascii=False)}}}')
    row_texts = rows_within(result.table, response_budget - LINKS_RESERVE - escaped_size(empty_body) + 2)
    item_meta = sized_meta if stored is None else sized_meta | _STORED_REPORTS
    room = item_budget - item_size(_item_without_rows(job, columns, item_meta, now)) - len(ROWS_ATTRIBUTE)
    kept, rows_bz2 = fit_compressed_rows(row_texts, room)
    meta = result.meta(execution_time_seconds, kept) | {"errors": sized_meta["errors"]}
    return CompletedItem(columns, rows_bz2, meta if stored is None else meta | _STORED_REPORTS)


def complete_job(
    inputs: AggregateInput, *, jobs: JobStore, counters: JobProgressCounters, map_items: MapItemStore,
    partials: PartialResultStore, results: ResultStore, documents: JobDocuments,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Merge the batches' partial results, write the full result, and complete the job with its first
    rows and meta. False when the job is gone (expired) or has already ended (cancelled, failed)."""
    job = jobs.get(inputs.job_id)
    if job is None:
        logger.warning("job item is gone (expired); nothing to complete")
        return False
    # A distributed plan kept its batches in S3, out of the state.
    inputs = inputs.model_copy(update={"plan": planned_batches(inputs.plan, map_items, inputs.job_id, documents)})
    result = collect(inputs, partials)
    total, errored = len(result.outcomes), len({o.bucket for o in result.outcomes if o.status == "error"})
    # The batches are done: the item read above holds every count they reported. When those are the final
    # ones already (no batch failed unreported), there is nothing to correct.
    recorded = (job.databases_total, job.databases_done, job.databases_errored, job.rows_so_far)
    final_counts_recorded = recorded == (total, total, errored, result.table.num_rows)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="export") as pool:
        # The result files are written while the item's rows are fitted: both are mostly pyarrow and bz2,
        # which release the GIL, and at 3,008 MB the function has ~1.7 vCPUs. The final counts go to the
        # item meanwhile (a round trip that waits on nothing else).
        exported = pool.submit(export_result, result.table, results, inputs.job_id)
        counted = None if final_counts_recorded else pool.submit(
            record_final, counters, inputs.job_id, total, errored, result.table.num_rows)
        fitted_at = clock()
        item = completed_item(job, result, execution_time_seconds=fitted_at - inputs.submitted_at, now=fitted_at,
                              documents=documents)
        # The full result is in place before the job reads completed, so a completed job can always be paged.
        exported.result()
        if counted is not None:
            counted.result()
    now = clock()
    item = item.finished(now - inputs.submitted_at)
    meta = item.meta
    completed = job_lifecycle.complete(jobs, inputs.job_id, item.columns, item.rows_bz2, meta, now)
    metrics.add_metric(name="Rows", unit="Count", value=result.table.num_rows)
    logger.info("aggregated", extra={"total_rows": meta["total_rows"], "truncated": meta["truncated"]})
    return completed
