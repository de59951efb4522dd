"""Submitting a job with the stores this function is configured with: the one path both POST /query-all
and the event submits take, so the two cannot drift apart in what a submit records or how a retried
Idempotency-Key (or idempotency_key) finds its job."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from queryall.dal.catalog import CatalogStore
from queryall.dal.job_documents import JobDocuments
from queryall.dal.jobs import JobStore
from queryall.dal.sql_guard_client import SqlGuardClient
from queryall.dal.workflow import QueryWorkflow
from queryall.logic.submission import submit_job
from queryall.models.api import SubmitRequest
from queryall.settings import get_settings


def submit_configured(
    request: SubmitRequest,
    owner: str,
    *,
    idempotency_key: str | None,
    idempotent_body: dict[str, Any],
    lambda_context: Any,
    jobs: JobStore | None = None,
    scope: frozenset[str] | None = None,
    admit: Callable[[str, float], None] | None = None,
    reply_to: str | None = None,
) -> str:
    """The job id of this submit; with an idempotency key, the one job of (owner, key) for
    ``idempotent_body`` (the request as the key's reuse is compared)."""
    settings = get_settings()

    def submit_now() -> str:
        return submit_job(
            request,
            owner,
            jobs=JobStore(settings.require("jobs_table")) if jobs is None else jobs,
            workflow=QueryWorkflow(settings.require("state_machine_arn")),
            sql_guard=SqlGuardClient(settings.require("sql_guard_function")),
            now=time.time(),
            ttl_seconds=settings.job_ttl_seconds,
            catalog=CatalogStore(settings.catalog_table) if settings.catalog_table else None,
            documents=JobDocuments(settings.require("results_bucket")),
            scope=scope,
            admit=admit,
            default_timeout_seconds=settings.job_timeout_default_seconds,
            max_timeout_seconds=settings.job_timeout_max_seconds,
            reply_to=reply_to,
        ).job_id

    if idempotency_key is None:
        return submit_now()
    from queryall.logic.idempotency import check_idempotency_key, submit_once

    return submit_once(owner, check_idempotency_key(idempotency_key), idempotent_body, submit_now,
                       table_name=settings.require("idempotency_table"),
                       expires_after_seconds=settings.job_ttl_seconds, lambda_context=lambda_context)
