"""GET /query-all/jobs (the caller's jobs, newest first) and DELETE /query-all/jobs/{jobId} (cancel)."""

from __future__ import annotations

import time
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from queryall.dal.jobs import JobStore
from queryall.dal.workflow import QueryWorkflow
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.auth import require_admin_principal
from queryall.logic.cancellation import cancel_job
from queryall.logic.job_history import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, list_everyones_jobs, list_jobs
from queryall.logic.polling import job_response_body
from queryall.models.job_views import AdminJobListResponse, JobListResponse
from queryall.observability import logger
from queryall.settings import get_settings

router = Router()


@router.get("/query-all/jobs", **route(
    "List your jobs, newest first",
    {200: documented("A page of the caller's jobs, newest first, without results (with all=true: every "
                     "caller's, each with its owner)", "job_views.JobListResponse", "job_views.AdminJobListResponse")},
    400, 401, 403))
def list_own_jobs(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Jobs per page.")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous page.")] = None,
    all: Annotated[bool, Query(description="Every caller's jobs (admin only); never implied.")] = False,
) -> Response[str]:
    settings = get_settings()
    if all:
        require_admin_principal(router.context["principal"])
        everyone = list_everyones_jobs(JobStore(settings.require("jobs_table")), limit, cursor, time.time())
        return json_response(200, AdminJobListResponse(data=everyone).model_dump_json())
    page = list_jobs(JobStore(settings.require("jobs_table")), router.context["caller"], limit, cursor,
                     time.time(), max_job_seconds=settings.max_job_seconds)
    return json_response(200, JobListResponse(data=page).model_dump_json())


@router.delete("/query-all/jobs/<jobId>", **route(
    "Cancel a job", {200: documented("The job is cancelled (also when it already was)", "job_views.CancelResponse")},
    401, 404, 409))
def cancel(jobId: str) -> Response[str]:  # noqa: N803  (the route's parameter name)
    logger.append_keys(job_id=jobId)
    settings = get_settings()
    job = cancel_job(JobStore(settings.require("jobs_table")), QueryWorkflow(settings.require("state_machine_arn")),
                     jobId, router.context["caller"], time.time())
    return json_response(200, job_response_body(job))


app = build_resolver(router)

handler = http_handler(app, settings=("jobs_table", "state_machine_arn"))
