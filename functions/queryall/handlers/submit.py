"""POST /query-all"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header

from queryall.dal.jobs import JobStore
from queryall.dal.quotas import QuotaStore
from queryall.handlers.configured_submit import submit_configured
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.quotas import QuotaDefaults, admit_submit
from queryall.models.api import SubmitRequest, SubmitResponse, SubmittedJob
from queryall.settings import get_settings

router = Router()


@router.post("/query-all", **route(
    "Submit a query",
    {202: documented("Job accepted (with the same Idempotency-Key and body again: the same job)",
                     "api.SubmitResponse")},
    400, 401, 403, 404, 409, 429, 503))
def submit(
    body: SubmitRequest,
    idempotency_key: Annotated[str | None, Header(
        alias="idempotency-key", max_length=255,
        description="Makes retries safe: the same key and body within the job's lifetime return the same "
                    "job without starting another; the same key with a different body is 409.")] = None,
) -> Response[str]:
    settings = get_settings()

    principal = router.context["principal"]
    jobs = JobStore(settings.require("jobs_table"))

    def admit(job_id: str, now: float) -> None:
        admit_submit(principal, job_id, now, quotas=QuotaStore(settings.require("quotas_table")), jobs=jobs,
                     defaults=QuotaDefaults(max_running=settings.max_running_jobs,
                                            rate_per_minute=settings.submits_per_minute))

    job_id = submit_configured(body, router.context["caller"], idempotency_key=idempotency_key,
                               idempotent_body=body.model_dump(mode="json"),
                               lambda_context=router.lambda_context, jobs=jobs, scope=principal.buckets,
                               admit=admit)
    return json_response(202, SubmitResponse(data=SubmittedJob(job_id=job_id)).model_dump_json())


app = build_resolver(router)

handler = http_handler(app, settings=("jobs_table", "state_machine_arn", "sql_guard_function", "quotas_table",
                                      "idempotency_table"))
