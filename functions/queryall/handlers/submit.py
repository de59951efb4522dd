"""POST /query-all"""

from __future__ import annotations

import time

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.jobs import JobStore
from queryall.dal.sql_guard_client import SqlGuardClient
from queryall.dal.workflow import QueryWorkflow
from queryall.handlers.http_api import build_resolver, json_response, resolve
from queryall.logic.submission import submit_job
from queryall.models.api import SubmitRequest, SubmitResponse, SubmittedJob
from queryall.observability import logger, metrics, tracer
from queryall.settings import get_settings

router = Router()


@router.post("/query-all", responses={202: {"description": "Job accepted"}})
def submit(body: SubmitRequest) -> Response[str]:
    settings = get_settings()
    job = submit_job(
        body,
        router.context["caller"],
        jobs=JobStore(settings.require("jobs_table")),
        workflow=QueryWorkflow(settings.require("state_machine_arn")),
        sql_guard=SqlGuardClient(settings.require("sql_guard_function")),
        now=time.time(),
        ttl_seconds=settings.job_ttl_seconds,
    )
    return json_response(202, SubmitResponse(data=SubmittedJob(job_id=job.job_id)).model_dump_json())


app = build_resolver(router)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return resolve(app, event, context)
