"""Workflow step: a question job's SQL, generated once, checked, and recorded on the job.

Returns the execution input with `sql` set, or with `generation_error` ("Could not generate SQL: …"),
which the state machine sends to FailJob as `generation_failed` before any tenant is queried.
"""

from __future__ import annotations

import time

from queryall.dal.job_documents import JobDocuments
from queryall.dal.jobs import JobStore
from queryall.dal.sql_cache import SqlCache
from queryall.dal.sql_generators import NoGeneratorConfigured, sql_generator
from queryall.errors import GenerationFailed
from queryall.handlers.workflow_step import workflow_step
from queryall.logic.catalog import catalog_entries
from queryall.logic.planning import requested_buckets
from queryall.logic.schema_context import build_schema_context
from queryall.logic.sql_generation import SqlRefused, generate_sql
from queryall.logic.sql_guard import SqlRejected, check_read_only_select
from queryall.models.execution import ExecutionInput
from queryall.observability import logger
from queryall.settings import get_settings


def _guard(sql: str) -> str:
    try:
        return check_read_only_select(sql)
    except SqlRejected as rejection:
        raise SqlRefused(str(rejection)) from None


@workflow_step(ExecutionInput, settings=("catalog_table", "jobs_table"))
def handler(event: ExecutionInput) -> dict:
    settings = get_settings()
    state = event.model_dump(mode="json")
    try:
        try:
            generator = sql_generator(settings)
        except NoGeneratorConfigured as missing:
            raise GenerationFailed(str(missing)) from None
        # Only tenants in the submitter's scope (recorded on the job) describe the schema.
        schema = build_schema_context(catalog_entries(settings.require("catalog_table")).values(),
                                      buckets=requested_buckets(event, JobDocuments(settings.results_bucket or "")),
                                      table=event.table,
                                      allowed_buckets=None if event.scope is None else set(event.scope),
                                      max_chars=settings.schema_context_max_chars)
        generated = generate_sql(event.question or "", schema, generator, _guard,
                                 cache=SqlCache(settings.require("jobs_table")), now=time.time(),
                                 cache_ttl_seconds=settings.job_ttl_seconds)
    except GenerationFailed as failure:
        logger.info("SQL generation failed", extra={"error_message": failure.message})
        return {**state, "generation_error": failure.message}
    JobStore(settings.require("jobs_table")).record_generated_sql(event.job_id, generated.sql)
    return {**state, "sql": generated.sql, "generation_error": None}

