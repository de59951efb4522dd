"""GET /query-all/databases (tenants with their tables) and POST /query-all/catalog/refresh (admin)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from queryall.dal.catalog import CatalogStore, RefreshUnavailable, start_refresh
from queryall.errors import ServiceUnavailable
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.auth import require_admin_principal
from queryall.logic.catalog import databases_page
from queryall.models.catalog import RefreshResponse, RefreshStarted
from queryall.observability import logger
from queryall.settings import get_settings

router = Router()


@router.get("/query-all/databases", **route(
    "Tenant databases with their tables and columns, from the catalog",
    {200: documented("A page of tenants in bucket order", "catalog.DatabasesResponse")}, 400, 401))
def list_databases(
    limit: Annotated[int, Query(ge=1, le=1000, description="Tenants per page.")] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> Response[str]:
    page = databases_page(CatalogStore(get_settings().require("catalog_table")), limit, cursor,
                          router.context["principal"].buckets)
    return json_response(200, page.model_dump_json())


@router.post("/query-all/catalog/refresh", **route(
    "Refresh the table catalog now (admin key only)",
    {202: documented("The refresh is running", "catalog.RefreshResponse")}, 401, 403, 503))
def refresh_catalog() -> Response[str]:
    settings = get_settings()
    require_admin_principal(router.context["principal"])
    try:
        start_refresh(settings.require("refresh_catalog_function"))
    except RefreshUnavailable as error:
        logger.exception("could not start the catalog refresh")
        raise ServiceUnavailable("Could not start the catalog refresh; try again") from error
    return json_response(202, RefreshResponse(data=RefreshStarted()).model_dump_json())


app = build_resolver(router)

handler = http_handler(app, settings=("catalog_table", "admin_api_keys_parameter", "refresh_catalog_function"))
