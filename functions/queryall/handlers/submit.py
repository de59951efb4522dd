"""POST /query-all"""

from __future__ import annotations

import time

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from queryall.dal.catalog import CatalogStore
from queryall.dal.job_documents import JobDocuments
from queryall.dal.jobs import JobStore
from queryall.dal.sql_guard_client import SqlGuardClient
from queryall.dal.workflow import QueryWorkflow
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.submission import submit_job
from queryall.models.api import SubmitRequest, SubmitResponse, SubmittedJob
from queryall.settings import get_settings

router = Router()


@router.post("/query-all", **route("Submit a query", {202: documented("Job accepted", "api.SubmitResponse")},
                                   400, 401, 404, 503))
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
        catalog=CatalogStore(settings.catalog_table) if settings.catalog_table else None,
        documents=JobDocuments(settings.require("results_bucket")),
        scope=router.context["principal"].buckets,
    )
    return json_response(202, SubmitResponse(data=SubmittedJob(job_id=job.job_id)).model_dump_json())


app = build_resolver(router)

handler = http_handler(app, settings=("jobs_table", "state_machine_arn", "sql_guard_function"))
