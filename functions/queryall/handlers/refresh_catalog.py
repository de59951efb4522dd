"""Refresh the table catalog: on the EventBridge schedule and on POST /query-all/catalog/refresh."""

from __future__ import annotations

import time

from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.catalog import CatalogStore
from queryall.dal.tenant_databases import tenant_databases
from queryall.handlers import init_done
from queryall.logic.catalog import refresh_catalog
from queryall.observability import logger, tracer
from queryall.settings import get_settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    settings = get_settings()
    result = refresh_catalog(tenant_databases(settings.require("tenant_databases")),
                             CatalogStore(settings.require("catalog_table")), time.time())
    logger.info("catalog refreshed", extra=result.model_dump())
    return result.model_dump()


init_done()
