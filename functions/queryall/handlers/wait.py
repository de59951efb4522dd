"""GET /query-all/wait — hold the request until the listed jobs have finished, or the timeout."""

from __future__ import annotations

import time
import urllib.parse
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from queryall.dal.jobs import JobStore
from queryall.dal.result_files import ResultStore
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.polling import job_response_body
from queryall.logic.result_links import ResultLinks
from queryall.logic.waiting import DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, parse_job_ids, wait_for_jobs
from queryall.models.job import Job
from queryall.models.result_format import ResultFormat
from queryall.settings import get_settings

router = Router()


_WAITED = documented("Finished jobs, the ids still to wait for, and unknown ids", "job_views.WaitResponse")


@router.get("/query-all/wait", **route("Wait until jobs finish (up to 25 s)", {200: _WAITED}, 400, 401))
def wait(
    job_ids: Annotated[list[str], Query(
        description='Up to 100 job ids: a JSON array (job_ids=["id1","id2"]), repeated or comma-separated.',
    )],
    timeout_seconds: Annotated[float, Query(
        ge=0, le=MAX_TIMEOUT_SECONDS, description="How long to hold the request when jobs are still processing.",
    )] = DEFAULT_TIMEOUT_SECONDS,
) -> Response[str]:
    # API Gateway joins repeated parameters with commas (and Powertools splits on them, breaking the JSON
    # array form), so the ids are read from the raw query string.
    raw = urllib.parse.parse_qsl(router.current_event.raw_query_string, keep_blank_values=True)
    ids = parse_job_ids([value for name, value in raw if name == "job_ids"])
    settings = get_settings()
    results = ResultStore(settings.require("results_bucket"))

    def poll_body(job: Job) -> str:  # exactly what GET /query-all/jobs/{jobId} returns
        return job_response_body(job, ResultFormat.JSON,
                                 ResultLinks(results, settings.result_url_expiry_seconds, time.time()))

    body = wait_for_jobs(JobStore(settings.require("jobs_table")), ids, router.context["caller"], timeout_seconds,
                         poll_body, max_job_seconds=settings.max_job_seconds)
    return json_response(200, body)


app = build_resolver(router)

handler = http_handler(app, settings=("jobs_table", "results_bucket"))
