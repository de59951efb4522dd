"""Submitting a job: check the SQL, record the job, start the workflow."""

from __future__ import annotations

import json
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.catalog import CatalogStore
from queryall.dal.job_documents import REQUESTED_BUCKETS, JobDocuments
from queryall.dal.jobs import JobStore
from queryall.dal.sql_guard_client import SqlGuardClient, SqlGuardUnavailable
from queryall.dal.workflow import QueryWorkflow, WorkflowStartFailed
from queryall.errors import InvalidRequest, InvalidSql, NotFound, RateLimited, ServiceUnavailable
from queryall.logic import job_lifecycle
from queryall.logic.scope import in_scope, recorded_scope, require_buckets_in_scope, scope_suffixes
from queryall.models.api import SubmitRequest
from queryall.models.execution import ExecutionInput
from queryall.models.job import Job, JobRequest
from queryall.observability import logger, metrics

# Buckets named in a request travel in the job item and the workflow input up to this much JSON
# (about 60 of the longest ids, 400 short ones); a longer list is kept in S3.
INLINE_BUCKETS_BYTES = 4096


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
    documents: JobDocuments | None = None,
    scope: frozenset[str] | None = None,
    admit: Callable[[str, float], None] | None = None,
    default_timeout_seconds: int = 300,
    max_timeout_seconds: int = 900,
    reply_to: str | None = None,
) -> Job:
    """Record the job and start its workflow. ``documents`` keeps a long list of buckets out of the job
    item and the workflow input (see JobRequest). ``scope``: the tenants the caller may query (None: every
    tenant); a named bucket outside it is a 403 before anything else happens, and without `buckets` the
    job queries the tenants in scope. The job's deadline is ``timeout_seconds`` after ``now``
    (``default_timeout_seconds`` when the request has none; at most ``max_timeout_seconds``)."""
    require_buckets_in_scope(request.buckets, scope)
    timeout_seconds = request.timeout_seconds or default_timeout_seconds
    if timeout_seconds > max_timeout_seconds:
        raise InvalidRequest(f"timeout_seconds: at most {max_timeout_seconds} seconds, got {timeout_seconds}")
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
        require_known_table(catalog, request.table, scope)

    buckets = request.buckets
    job_request = JobRequest(
        sql=sql, question=request.question, limit=request.limit, table=request.table,
        buckets=buckets, bucket_count=None if buckets is None else len(buckets), timeout_seconds=timeout_seconds,
        scope=recorded_scope(scope),
    )
    job = job_lifecycle.new_job(job_request, owner, now, ttl_seconds)
    if reply_to is not None:  # an event submit's: its state-change events carry it
        job = job.model_copy(update={"reply_to": reply_to})
    if buckets is not None and len(json.dumps(buckets)) > INLINE_BUCKETS_BYTES:
        if documents is None:
            raise ValueError("a long list of buckets needs the job documents store")
        try:
            documents.put(job.job_id, REQUESTED_BUCKETS, buckets)
        except (ClientError, BotoCoreError) as error:
            logger.exception("could not store the requested buckets")
            raise ServiceUnavailable("Could not record the query; try again") from error
        job_request = job_request.model_copy(update={"buckets": None, "buckets_stored": True})
        job = job.model_copy(update={"request": job_request})
    jobs.create(job)
    if admit is not None:
        # The quotas (logic.quotas): after the job is recorded, so a job holding a running slot always
        # exists to be seen processing; refused, the job is forgotten before anyone learnt its id.
        try:
            admit(job.job_id, now)
        except RateLimited:
            jobs.delete(job.job_id)
            raise
    logger.append_keys(job_id=job.job_id)
    try:
        workflow.start(ExecutionInput(job_id=job.job_id, submitted_at=now, deadline=now + timeout_seconds,
                                      **job_request.model_dump(exclude={"timeout_seconds"})))
    except WorkflowStartFailed as error:
        logger.exception("could not start the workflow")
        job_lifecycle.fail(jobs, job.job_id, "start_failed", f"Could not start the query workflow: {error}", now)
        raise ServiceUnavailable("Could not start the query; the job was marked failed, try again") from error
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    return job


def require_known_table(store: CatalogStore, table: str, scope: frozenset[str] | None = None) -> None:
    """Raise NotFound when the catalog says no tenant has `table` (one read). Without a catalog yet (or
    when it cannot be read) nothing is known to be missing, so nothing is refused. For a scoped caller
    only the tenants in scope count: a table that only other tenants have is unknown to this caller."""
    try:
        summary = store.summary()
        if summary is None or not summary.knows_table(table):
            known = summary is None
        elif scope is None:
            known = True
        else:
            suffixes = scope_suffixes(scope)
            known = any(entry.has_table(table) for bucket, entry in store.entries().items()
                        if in_scope(bucket, suffixes))
    except (ClientError, BotoCoreError):
        logger.warning("catalog unavailable; the table is checked when tenants are queried", exc_info=True)
        return
    if not known:
        raise NotFound(f"Unknown table: {table}")
