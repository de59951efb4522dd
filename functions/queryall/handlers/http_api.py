"""What every API function shares: the resolver, API-key auth, the one error envelope, and its handler."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from queryall.errors import InvalidRequest, NotFound, QueryAllError, RateLimited
from queryall.handlers.credentials import authenticate
from queryall.handlers.function import Handler, function_handler
from queryall.logic import json_input
from queryall.observability import logger
from queryall.snapstart import register as register_snapstart_hooks

# Every API function runs with SnapStart (template.yaml): renew what a restored snapshot shares.
register_snapstart_hooks()

JSON = "application/json"
_ERRORS = {
    400: "invalid_request (invalid_sql for SQL that is not one read-only SELECT): the message names the problem",
    401: "unauthorized: no accepted X-API-Key or Bearer token (missing, unknown, revoked, expired, "
         "wrongly signed)",
    403: "forbidden: the caller may not do this: a bucket outside its scope (\"Access denied to bucket 'x'\", "
         "the first such bucket in request order) or an admin route",
    404: "not_found: no such job (unknown, malformed or expired id), no such route, or (submit) a table no tenant has",
    409: "conflict: the job is in a state that does not allow this (submit: an Idempotency-Key reused with a "
         "different request)",
    413: "response_too_large: one row is larger than a response can carry",
    429: "rate_limited: over a quota (running jobs or submits per minute; the message names it); the "
         "Retry-After header says when to try again",
    503: "service_unavailable: a dependency is unavailable; try again",
}


# A documented response names its models ("module.Class" in queryall.models) instead of holding them:
# the OpenAPI document (queryall.handlers.openapi) puts the models in when it is built. The functions
# themselves never need them: Powertools would build a validation schema for every response model at
# the first request, and importing a module of models builds each one's pydantic schema at cold start.
DOCUMENTED_BY = "x-queryall-models"


def documented(description: str, *models: str) -> dict:
    """An OpenAPI response whose JSON body is one of `models` (names such as "api.ErrorResponse")."""
    return {"description": description, "content": {JSON: {DOCUMENTED_BY: models}}}


def error_responses(*status_codes: int) -> dict[int, dict]:
    """OpenAPI entries for the errors a route answers with, all in the one error envelope."""
    return {code: documented(_ERRORS[code], "api.ErrorResponse") for code in status_codes}


def route(summary: str, success: dict[int, dict], *error_status_codes: int) -> dict:
    """A route's documentation, the keyword arguments of its declaration: its summary, its successful
    response(s) (`documented`) and the errors it answers with."""
    return {"summary": summary, "responses": {**success, **error_responses(*error_status_codes)}}


def json_response(status_code: int, body: str | dict) -> Response[str]:
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(status_code=status_code, content_type=JSON, body=text)


def error_response(status_code: int, code: str, message: str) -> Response:
    return json_response(status_code, {"error": {"code": code, "message": message}})


def describe_validation_error(error: RequestValidationError | ValidationError) -> str:
    """A request's validation problems in one line (also the event submits' reason for a dead letter)."""
    problems = []
    for detail in error.errors()[:5]:
        if detail.get("type") == "json_invalid":
            return "Request body is not valid JSON"
        location = [str(part) for part in detail.get("loc", ()) if part != "body"]
        message = str(detail.get("msg", "is invalid")).removeprefix("Value error, ")
        if detail.get("type") == "missing" and location == []:
            message = "Request body is required"
        problems.append(f"{'.'.join(location)}: {message}" if location else message)
    return "; ".join(problems) or "Request is invalid"


def resolve(app: APIGatewayHttpResolver, event: dict, context: LambdaContext) -> dict:
    """Authenticate, then route. Both happen before Powertools validates the request, so a caller
    without a valid key learns nothing about the API beyond the 401."""
    headers = event.get("headers") or {}
    event["headers"] = headers
    try:
        principal = authenticate(event)
        # `caller` is the owner of the jobs it submits; `principal` adds its scope and admin flag.
        app.append_context(caller=principal.owner, principal=principal)
        _body_as_text(event)
    except QueryAllError as error:
        body = json.dumps({"error": {"code": error.code, "message": error.message}})
        return {"statusCode": error.status_code, "headers": {"Content-Type": JSON}, "body": body,
                "isBase64Encoded": False}
    # The API speaks JSON only; `curl -d` labels a JSON body as a form, so bodies are read as JSON
    # whatever the declared type (a body that is not JSON still gets a clear 400).
    if event.get("body") is not None:
        headers["content-type"] = "application/json"
    return app.resolve(event, context)


def _body_as_text(event: dict) -> None:
    """API Gateway base64-encodes a body that is not UTF-8 text; Powertools would decode it as UTF-8
    inside the route and fail with a 500, so it is decoded here, where a bad one is a 400."""
    if event.get("isBase64Encoded") and event.get("body"):
        try:
            raw = base64.b64decode(event["body"], validate=True)
        except binascii.Error:
            raise InvalidRequest("Request body is not valid base64") from None
        event["body"] = json_input.text(raw)
        event["isBase64Encoded"] = False


def build_resolver(*routers: Router) -> APIGatewayHttpResolver:
    """The resolver of one API function: its routers plus the shared error handling.

    Each route module holds a Powertools Router; a function includes the routers it serves, and the
    OpenAPI document is built from all of them, so docs and code share one definition."""
    # Bodies are read by json_input.loads: hostile JSON is a 400 there, not a 500 in json.loads.
    app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=json_input.loads)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(QueryAllError)
    def _domain_error(error: QueryAllError) -> Response:
        response = error_response(error.status_code, error.code, error.message)
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> Response:
        return error_response(400, "invalid_request", describe_validation_error(error))

    @app.not_found
    def _not_found(_: Exception) -> Response:
        path = app.current_event.path
        return error_response(404, NotFound.code, f"No route for {app.current_event.http_method} {path}")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unexpected error")
        return error_response(500, "internal_error", "Internal error; the request was not completed")

    return app


def http_handler(app: APIGatewayHttpResolver, *, settings: Iterable[str] = ()) -> Handler:
    """The Lambda handler of an API function serving `app`, needing `settings` (and the API keys)."""

    def handler(event: dict, context: LambdaContext) -> dict:
        return resolve(app, event, context)

    return function_handler(handler, settings=("api_keys_parameter", *settings))
