"""GET /query-all/jobs/{jobId} — and the 404 for any route the API does not have."""

from __future__ import annotations

import time

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.jobs import JobStore
from queryall.handlers.http_api import build_resolver, json_response, resolve
from queryall.logic.polling import find_job, job_response_body
from queryall.observability import logger, tracer
from queryall.settings import get_settings

router = Router()


@router.get("/query-all/jobs/<jobId>")
def poll(jobId: str) -> Response[str]:  # noqa: N803  (the route's parameter name)
    logger.append_keys(job_id=jobId)
    job = find_job(JobStore(get_settings().require("jobs_table")), jobId, time.time())
    return json_response(200, job_response_body(job))


app = build_resolver(router)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return resolve(app, event, context)
