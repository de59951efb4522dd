"""GET /query-all/jobs/{jobId}/results — any page of a completed job's full result."""

from __future__ import annotations

import time
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from queryall.dal.jobs import JobStore
from queryall.dal.result_files import ResultStore
from queryall.errors import Conflict
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.paging import DEFAULT_PAGE_SIZE, MAX_CURSOR_LENGTH, MAX_PAGE_SIZE, decode_cursor
from queryall.logic.polling import find_job
from queryall.logic.result_links import ResultLinks
from queryall.models.job import JobStatus
from queryall.models.result_format import FORMAT_DESCRIPTION, ResultFormat
from queryall.observability import logger
from queryall.settings import get_settings

router = Router()


@router.get("/query-all/jobs/<jobId>/results", **route("Page through a completed job's full result", {
    200: documented("Up to page_size rows from the cursor on (fewer when they would make the response too "
                    "large); meta.next_cursor continues, null after the last row.", "results.ResultsPageResponse"),
}, 400, 401, 404, 409, 413))
def results(
    jobId: str,  # noqa: N803  (the route's parameter name)
    cursor: Annotated[str | None, Query(
        max_length=MAX_CURSOR_LENGTH, description="meta.next_cursor of the previous page (or of poll); "
                                                  "omit for the first page.",
    )] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Rows per page.")] = DEFAULT_PAGE_SIZE,
    format: Annotated[ResultFormat, Query(description=FORMAT_DESCRIPTION)] = ResultFormat.JSON,
) -> Response[str]:
    logger.append_keys(job_id=jobId)
    offset = 0 if cursor is None else decode_cursor(cursor, jobId)
    settings = get_settings()
    now = time.time()
    job = find_job(JobStore(settings.require("jobs_table")), jobId, now, router.context["caller"])
    if job.status is not JobStatus.COMPLETED:
        raise Conflict(f"Job {jobId} is {job.status.value}; only a completed job has results to page through"
                       + (" (poll it until it completes)" if job.status is JobStatus.PROCESSING else ""))
    links = ResultLinks(ResultStore(settings.require("results_bucket")), settings.result_url_expiry_seconds, now)
    # pyarrow and duckdb load here, not at import: the OpenAPI document imports every API route module.
    from queryall.logic.result_pages import results_page_body

    return json_response(200, results_page_body(job, links, offset, page_size, format))


app = build_resolver(router)

handler = http_handler(app, settings=("jobs_table", "results_bucket"))
