"""GET /openapi.json — the API's OpenAPI document, generated from the route models of every API router.

The API route modules are listed in ``ROUTE_MODULES`` (a test checks the list against the template's
HTTP routes, the one source of truth), so workflow handlers (which load duckdb and pyarrow) are never
imported here. Route modules keep duckdb and pyarrow out of their imports for the same reason (and for
their own cold start).

Responses name the models that document them (``http_api.documented``); the models are imported and
put in here, so the API functions never load them.

``python -m queryall.handlers.openapi docs/openapi.json`` writes the document (``make openapi``).
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import operator
import re
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

from queryall.handlers.http_api import DOCUMENTED_BY, build_resolver, error_responses, http_handler, json_response
from queryall.settings import unchecked

router = Router()

# Every module of queryall.handlers that serves HTTP routes (tests/unit/test_openapi.py compares it with
# the handlers of the template's HttpApi routes).
ROUTE_MODULES = ("catalog_api", "jobs", "keys", "openapi", "poll", "results", "sql_preview", "submit", "wait")
TITLE = "queryall"
VERSION = "0.1.0"
DESCRIPTION = (
    "Run one read-only SQL query across every per-tenant DuckDB database and read the combined result: "
    "submit, poll, page through it, or download it as JSON, Arrow, CSV or Parquet. "
    "Every route needs the X-API-Key header (a bootstrap or managed key) or, on the token API, "
    "Authorization: Bearer <JWT> (claims queryall_buckets, queryall_admin); a caller scoped to some "
    "buckets gets 403 for any other. Errors are {\"error\": {\"code\", \"message\"}}."
)


def api_routers() -> list[Router]:
    """The ``router`` of every API route module, in module name order."""
    # Imported for their routes only: the docs function is not given the routes' settings.
    with unchecked():
        return [importlib.import_module(f"queryall.handlers.{name}").router for name in ROUTE_MODULES]


def _model(names: tuple[str, ...]) -> Any:
    """The model named "module.Class" in queryall.models; several names make their union."""
    models = []
    for name in names:
        module, _, attribute = name.rpartition(".")
        models.append(getattr(importlib.import_module(f"queryall.models.{module}"), attribute))
    return functools.reduce(operator.or_, models)


def _with_models(part: Any) -> Any:
    """A route's key part; in its responses (status code: response), model names replaced by the models."""
    if not isinstance(part, dict) or not all(isinstance(code, int) for code in part):
        return part
    resolved = {code: {**response, "content": {
        media: {"model": _model(content[DOCUMENTED_BY])} if DOCUMENTED_BY in content else content
        for media, content in response["content"].items()}} if "content" in response else response
        for code, response in part.items()}
    return type(part)(resolved)  # Powertools' hashable dict: the responses are part of the route's key


# --- The one adapter to Powertools' internals -------------------------------------------------------
# Powertools has no public way to change a registered route's responses, and route modules name their
# response models instead of importing them (cold start). So this copies a Router with each route's key
# rewritten, through the two private dicts `Resolver.include_router` reads (`_routes`: route key ->
# function, `_routes_with_middleware`: route key -> middlewares). Nothing else here touches a private
# attribute. tests/unit/test_openapi.py::test_the_powertools_adapter_still_fits fails loudly, naming
# this function, when a Powertools release changes what it relies on.
def documented_copy(api_router: Router) -> Router:
    """A copy of a route module's router, its responses holding their models.

    A copy: including a router points it at the including resolver, and the original must keep serving
    its own function (the local stack runs every function in one process)."""
    documented = copy.copy(api_router)
    documented._routes = {tuple(map(_with_models, key)): func for key, func in api_router._routes.items()}
    documented._routes_with_middleware = {tuple(map(_with_models, key)): middlewares
                                          for key, middlewares in api_router._routes_with_middleware.items()}
    return documented
# --- end of the adapter ------------------------------------------------------------------------------


@functools.cache
def openapi_document() -> str:
    # Without validation: the resolver would document its 422 validation response, where ours answer 400.
    app = APIGatewayHttpResolver()
    for api_router in api_routers():
        app.include_router(documented_copy(api_router))
    document = json.loads(app.get_openapi_json_schema(
        title=TITLE, version=VERSION, description=DESCRIPTION,
        security_schemes={"apiKey": APIKey(name="X-API-Key", in_=APIKeyIn.header),
                          "bearerToken": HTTPBearer(bearerFormat="JWT", description=(
                              "A JWT from the configured issuer (the token API: TokenApiUrl). Claims: sub (the "
                              "owner), queryall_buckets (list, space-separated string, or *), queryall_admin."))},
        security=[{"apiKey": []}, {"bearerToken": []}],
    ))
    _drop_unused_schemas(document)
    return json.dumps(document, indent=2, ensure_ascii=False)


def _drop_unused_schemas(document: dict) -> None:
    """Remove component schemas nothing refers to (Powertools always adds its validation error shapes)."""
    schemas = document.get("components", {}).get("schemas", {})
    used: set[str] = set()
    pending = [{key: value for key, value in document.items() if key != "components"}]
    while pending:
        for name in re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(pending.pop())):
            if name not in used and name in schemas:
                used.add(name)
                pending.append(schemas[name])
    for name in set(schemas) - used:
        del schemas[name]


@router.get(
    "/openapi.json",
    summary="This API's OpenAPI document",
    responses={200: {"description": "OpenAPI 3.1 document"}, **error_responses(401)},
)
def openapi() -> Response[str]:
    return json_response(200, openapi_document())


app = build_resolver(router)

handler = http_handler(app)

if __name__ == "__main__":
    Path(sys.argv[1]).write_text(openapi_document() + "\n", encoding="utf-8")
