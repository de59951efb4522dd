"""Every API route behind the HTTP API's JWT authorizer: the function of the Bearer token API.

API Gateway's JWT authorizer refuses a request that has no `Authorization` header, so one set of routes
cannot take either an API key or a token. The template therefore has two HTTP APIs over the same code:
QueryAllApi (X-API-Key, one function per route) and, when JwtIssuer is set, QueryAllTokenApi, whose
`$default` route (JWT authorizer) comes here, and this function serves every API route module's router.
The authorizer has validated the token before this runs; `handlers.credentials` reads its claims.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.handlers import init_done
from queryall.handlers.http_api import build_resolver, resolve
from queryall.handlers.openapi import api_routers
from queryall.observability import logger

app = build_resolver(*api_routers())


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return resolve(app, event, context)


init_done()
