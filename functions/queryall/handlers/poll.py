"""GET /query-all/jobs/{jobId} — and the 404 for any route the API does not have."""

from __future__ import annotations

import time
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from queryall.dal.jobs import JobStore
from queryall.dal.result_files import ResultStore
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.job_watchdog import is_overdue, settle_overdue
from queryall.logic.polling import find_job, job_response_body
from queryall.logic.result_links import ResultLinks
from queryall.models.result_format import FORMAT_DESCRIPTION, ResultFormat
from queryall.observability import logger
from queryall.settings import get_settings

router = Router()


@router.get("/query-all/jobs/<jobId>", **route("Poll a job", {
    200: documented("Completed: the first rows of the result (as many as fit), its schema and a link to all of "
                    "it. Processing or failed: the job's status.",
                    "results.CompletedJobResponse", "results.JobStateResponse"),
}, 400, 401, 404))
def poll(
    jobId: str,  # noqa: N803  (the route's parameter name)
    format: Annotated[ResultFormat, Query(description=FORMAT_DESCRIPTION)] = ResultFormat.JSON,
) -> Response[str]:
    logger.append_keys(job_id=jobId)
    settings = get_settings()
    now = time.time()
    jobs = JobStore(settings.require("jobs_table"))
    job = find_job(jobs, jobId, now, router.context["caller"])
    if is_overdue(job, now, settings.max_job_seconds):
        settle_overdue(jobs, job, now, settings.max_job_seconds)
        job = find_job(jobs, jobId, now, router.context["caller"])  # failed now, or finished meanwhile
    links = ResultLinks(ResultStore(settings.require("results_bucket")), settings.result_url_expiry_seconds, now)
    return json_response(200, job_response_body(job, format, links))


app = build_resolver(router)

handler = http_handler(app, settings=("jobs_table", "results_bucket"))
