"""Every API route behind the HTTP API's JWT authorizer: the function of the Bearer token API.

API Gateway's JWT authorizer refuses a request that has no `Authorization` header, so one set of routes
cannot take either an API key or a token. The template therefore has two HTTP APIs over the same code:
QueryAllApi (X-API-Key, one function per route) and, when JwtIssuer is set, QueryAllTokenApi, whose
`$default` route (JWT authorizer) comes here, and this function serves every API route module's routes.
The authorizer has validated the token before this runs; `handlers.credentials` reads its claims.

Each route module is loaded here as a copy of its own: a Powertools router reads its request context
from the last resolver that included it, and the originals must keep serving their own functions (the
local stack runs every function in one process).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aws_lambda_powertools.event_handler.api_gateway import Router

from queryall import handlers
from queryall.handlers.http_api import build_resolver, http_handler
from queryall.handlers.openapi import ROUTE_MODULES
from queryall.settings import unchecked

# What the route modules need together (each checks its own; the copies are loaded unchecked).
SETTINGS = ("jobs_table", "results_bucket", "state_machine_arn", "sql_guard_function", "catalog_table",
            "admin_api_keys_parameter", "refresh_catalog_function", "api_keys_table", "quotas_table",
            "idempotency_table")


def _route_module_copies() -> list[Router]:
    routers = []
    with unchecked():
        for name in ROUTE_MODULES:
            source = Path(handlers.__path__[0], f"{name}.py")
            spec = importlib.util.spec_from_file_location(f"{__name__}.{name}", source)
            assert spec is not None and spec.loader is not None
            copy = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(copy)
            routers.append(copy.router)
    return routers


app = build_resolver(*_route_module_copies())

handler = http_handler(app, settings=SETTINGS)
