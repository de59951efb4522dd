"""Refresh the table catalog: on the EventBridge schedule and on POST /query-all/catalog/refresh."""

from __future__ import annotations

import time

from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.catalog import CatalogStore
from queryall.dal.tenant_databases import tenant_databases
from queryall.handlers.function import function_handler
from queryall.logic.catalog import refresh_catalog
from queryall.observability import logger
from queryall.settings import get_settings


def refresh(event: dict, context: LambdaContext) -> dict:
    settings = get_settings()
    result = refresh_catalog(tenant_databases(settings.require("tenant_databases")),
                             CatalogStore(settings.require("catalog_table")), time.time(),
                             remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000)
    logger.info("catalog refreshed", extra=result.model_dump())
    return result.model_dump()


handler = function_handler(refresh, settings=("tenant_databases", "catalog_table"), traced=True)
