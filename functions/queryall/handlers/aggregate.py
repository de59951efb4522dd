"""Workflow step: merge the partial results and complete the job."""

from __future__ import annotations

from queryall.dal.job_documents import JobDocuments
from queryall.dal.job_progress import JobProgressCounters
from queryall.dal.jobs import JobStore
from queryall.dal.map_items import MapItemStore
from queryall.dal.partial_results import PartialResultStore
from queryall.dal.result_files import ResultStore
from queryall.handlers.workflow_step import workflow_step
from queryall.logic.aggregation import complete_job
from queryall.models.workflow import AggregateInput
from queryall.settings import get_settings


@workflow_step(AggregateInput, settings=("jobs_table", "results_bucket"))
def handler(event: AggregateInput) -> dict:
    settings = get_settings()
    table, bucket = settings.require("jobs_table"), settings.require("results_bucket")
    completed = complete_job(event, jobs=JobStore(table), counters=JobProgressCounters(table),
                             map_items=MapItemStore(bucket), partials=PartialResultStore(bucket),
                             results=ResultStore(bucket), documents=JobDocuments(bucket))
    return {"completed": completed}
