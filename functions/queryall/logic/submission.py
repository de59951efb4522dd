"""Submitting a job: check the SQL, record the job, start the workflow."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.catalog import CatalogStore
from queryall.dal.jobs import JobStore
from queryall.dal.sql_guard_client import SqlGuardClient, SqlGuardUnavailable
from queryall.dal.workflow import QueryWorkflow, WorkflowStartFailed
from queryall.errors import InvalidSql, NotFound, ServiceUnavailable
from queryall.logic import job_lifecycle
from queryall.models.api import SubmitRequest
from queryall.models.execution import ExecutionInput
from queryall.models.job import Job, JobRequest
from queryall.observability import logger, metrics


def submit_job(
    request: SubmitRequest,
    owner: str,
    *,
    jobs: JobStore,
    workflow: QueryWorkflow,
    sql_guard: SqlGuardClient,
    now: float,
    ttl_seconds: int,
    catalog: CatalogStore | None = None,
) -> Job:
    sql = request.sql
    if sql is not None:
        try:
            verdict = sql_guard.check(sql)
        except SqlGuardUnavailable as error:
            logger.exception("SQL guard unavailable")
            raise ServiceUnavailable("SQL validation is unavailable; try again") from error
        if not verdict["ok"]:
            raise InvalidSql(verdict["message"])
        sql = verdict["sql"]
    if request.table is not None and catalog is not None:
        require_known_table(catalog, request.table)

    job_request = JobRequest(
        sql=sql, question=request.question, buckets=request.buckets, limit=request.limit, table=request.table
    )
    job = job_lifecycle.new_job(job_request, owner, now, ttl_seconds)
    jobs.create(job)
    logger.append_keys(job_id=job.job_id)
    try:
        workflow.start(ExecutionInput(job_id=job.job_id, submitted_at=now, **job_request.model_dump()))
    except WorkflowStartFailed as error:
        logger.exception("could not start the workflow")
        job_lifecycle.fail(jobs, job.job_id, "start_failed", f"Could not start the query workflow: {error}", now)
        raise ServiceUnavailable("Could not start the query; the job was marked failed, try again") from error
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    return job


def require_known_table(store: CatalogStore, table: str) -> None:
    """Raise NotFound when the catalog says no tenant has `table` (one read). Without a catalog yet (or
    when it cannot be read) nothing is known to be missing, so nothing is refused."""
    try:
        summary = store.summary()
    except (ClientError, BotoCoreError):
        logger.warning("catalog unavailable; the table is checked when tenants are queried", exc_info=True)
        return
    if summary is not None and not summary.knows_table(table):
        raise NotFound(f"Unknown table: {table}")
