"""POST /query-all/sql - the SQL a question would run, without running it."""

from __future__ import annotations

import time

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from queryall.dal.catalog import CatalogStore
from queryall.dal.sql_cache import SqlCache
from queryall.dal.sql_generators import NoGeneratorConfigured, sql_generator
from queryall.dal.sql_guard_client import SqlGuardClient, SqlGuardUnavailable
from queryall.errors import GenerationFailed, ServiceUnavailable
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.catalog import catalog_entries
from queryall.logic.schema_context import build_schema_context
from queryall.logic.scope import require_buckets_in_scope
from queryall.logic.sql_generation import SqlRefused, generate_sql
from queryall.logic.submission import require_known_table
from queryall.models.question import SqlPreviewRequest
from queryall.observability import logger
from queryall.settings import get_settings

router = Router()


def _guard(function_name: str):
    def check(sql: str) -> str:
        try:
            verdict = SqlGuardClient(function_name).check(sql)
        except SqlGuardUnavailable as error:
            logger.exception("SQL guard unavailable")
            raise ServiceUnavailable("SQL validation is unavailable; try again") from error
        if not verdict["ok"]:
            raise SqlRefused(verdict["message"])
        return verdict["sql"]

    return check


@router.post("/query-all/sql", **route("Generate the SQL for a question without running it", {
    200: documented("The SQL a job with this question would run", "question.SqlPreviewResponse"),
    422: documented("generation_failed: no SQL could be generated; the message says why "
                    "(\"Could not generate SQL: …\")", "api.ErrorResponse"),
}, 400, 401, 403, 404, 503))
def preview_sql(body: SqlPreviewRequest) -> Response[str]:
    settings = get_settings()
    catalog_table = settings.require("catalog_table")
    scope = router.context["principal"].buckets
    require_buckets_in_scope(body.buckets, scope)
    if body.table is not None:
        require_known_table(CatalogStore(catalog_table), body.table, scope)
    try:
        generator = sql_generator(settings)
    except NoGeneratorConfigured as missing:
        raise GenerationFailed(str(missing)) from None
    # Only tenants in the caller's scope describe the schema (a scoped caller learns nothing of the others).
    schema = build_schema_context(catalog_entries(catalog_table).values(), buckets=body.buckets,
                                  allowed_buckets=None if scope is None else set(scope),
                                  table=body.table, max_chars=settings.schema_context_max_chars)
    generated = generate_sql(body.question, schema, generator, _guard(settings.require("sql_guard_function")),
                             cache=SqlCache(settings.require("jobs_table")), now=time.time(),
                             cache_ttl_seconds=settings.job_ttl_seconds)
    return json_response(200, {"data": {"sql": generated.sql, "tables": generated.tables}})


app = build_resolver(router)

handler = http_handler(app, settings=("catalog_table", "sql_guard_function", "jobs_table"))
