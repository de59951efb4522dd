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
import pkgutil
import re
from pathlib import Path

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall import handlers
from queryall.handlers import init_done
from queryall.handlers.http_api import build_resolver, resolve
from queryall.observability import logger

_DEFINES_ROUTER = re.compile(r"^router = Router\(\)", re.MULTILINE)  # as queryall.handlers.openapi finds them


def _route_module_copies() -> list[Router]:
    routers = []
    for module in sorted(pkgutil.iter_modules(handlers.__path__), key=lambda m: m.name):
        source = Path(handlers.__path__[0], f"{module.name}.py")
        if not (source.is_file() and _DEFINES_ROUTER.search(source.read_text(encoding="utf-8"))):
            continue
        spec = importlib.util.spec_from_file_location(f"{__name__}.{module.name}", source)
        assert spec is not None and spec.loader is not None
        copy = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(copy)
        routers.append(copy.router)
    return routers


app = build_resolver(*_route_module_copies())


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return resolve(app, event, context)


init_done()
