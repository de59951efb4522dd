"""Workflow step: merge the partial results and complete the job."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.job_documents import JobDocuments
from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.jobs import JobStore
from queryall.dal.map_items import MapItemStore
from queryall.dal.partial_results import PartialResultStore
from queryall.dal.result_files import ResultStore
from queryall.handlers import init_done
from queryall.logic import job_lifecycle
from queryall.logic.aggregation import collect, completed_item
from queryall.logic.distribution import planned_batches
from queryall.logic.progress import record_final
from queryall.logic.result_export import export_result
from queryall.models.workflow import AggregateInput
from queryall.observability import logger, metrics, tracer
from queryall.settings import get_settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=AggregateInput)
def handler(event: AggregateInput, context: LambdaContext) -> dict:
    logger.append_keys(job_id=event.job_id)
    settings = get_settings()
    jobs = JobStore(settings.require("jobs_table"))
    job = jobs.get(event.job_id)
    if job is None:
        logger.warning("job item is gone (expired); nothing to complete")
        return {"completed": False}
    # A distributed plan kept its batches in S3, out of the state.
    event.plan = planned_batches(event.plan, MapItemStore(settings.require("results_bucket")), event.job_id,
                                 JobDocuments(settings.require("results_bucket")))
    result = collect(event, PartialResultStore(settings.require("results_bucket")))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export") as pool:
        # The result files are written while the item's rows are fitted: both are mostly pyarrow and bz2,
        # which release the GIL, and at 3,008 MB the function has ~1.7 vCPUs.
        exported = pool.submit(export_result, result.table, ResultStore(settings.require("results_bucket")),
                               event.job_id)
        fitted_at = time.time()
        item = completed_item(job, result, execution_time_seconds=fitted_at - event.submitted_at, now=fitted_at,
                              documents=JobDocuments(settings.require("results_bucket")))
        # The full result is in place before the job reads completed, so a completed job can always be paged.
        exported.result()
    now = time.time()
    item = item.finished(now - event.submitted_at)
    meta = item.meta
    record_final(JobProgressCounters(settings.require("jobs_table")), event.job_id, len(result.outcomes),
                 meta["databases_errored"], meta["total_rows"])
    completed = job_lifecycle.complete(jobs, event.job_id, item.columns, item.rows_bz2, meta, now)
    metrics.add_metric(name="Rows", unit="Count", value=result.table.num_rows)
    logger.info("aggregated", extra={"total_rows": meta["total_rows"], "truncated": meta["truncated"]})
    return {"completed": completed}


init_done()
