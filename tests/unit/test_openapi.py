"""The OpenAPI document: generated from every API router, committed in docs/, and cheap to serve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from queryall.handlers.openapi import api_routers, openapi_document

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.json"


def test_committed_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == openapi_document() + "\n", (
        "docs/openapi.json is stale: run `make openapi`")


def test_document_covers_every_route_and_its_responses() -> None:
    document = json.loads(openapi_document())
    routes = {(method, route[0]) for router in api_routers() for route in router._routes for method in route[1]}
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    # Powertools keeps <param> in the routes; OpenAPI writes {param}.
    assert {(m, p.replace("<", "{").replace(">", "}")) for m, p in routes} == documented
    poll = document["paths"]["/query-all/jobs/{jobId}"]["get"]
    assert {"200", "400", "401", "404"} <= set(poll["responses"])
    page = document["paths"]["/query-all/jobs/{jobId}/results"]["get"]
    assert {p["name"] for p in page["parameters"]} == {"jobId", "cursor", "page_size", "format"}
    assert page["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    schemas = document["components"]["schemas"]
    assert schemas["ResultFormat"]["enum"] == ["json", "arrow", "csv", "parquet"]
    assert {"schema", "returned_rows", "result_url", "next_cursor", "truncated"} <= set(
        schemas["JobResultMeta"]["properties"])
    # Validation errors are 400 here; the one 422 is the SQL preview's generation_failed (issue 14).
    unprocessable = {path for path, operations in document["paths"].items() for operation in operations.values()
                     if "422" in operation["responses"]}
    assert unprocessable == {"/query-all/sql"} and "HTTPValidationError" not in json.dumps(document)
    preview_422 = document["paths"]["/query-all/sql"]["post"]["responses"]["422"]
    assert preview_422["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"


def test_api_modules_load_neither_duckdb_nor_pyarrow() -> None:
    # The API functions' cold start: importing every route module, building the document and answering a
    # JSON poll of a completed job must not load duckdb or pyarrow (only format=arrow and pages may).
    script = """
import bz2, json, sys
from queryall.handlers import openapi, poll, submit
from queryall.handlers.openapi import api_routers, openapi_document
from queryall.logic.polling import job_response_body
from queryall.models.job import Job, JobRequest
api_routers(); openapi_document()
job = Job(job_id="j", status="completed", owner="o", created_at="t", submitted_at=1, expires_at=2,
          request=JobRequest(sql="SELECT 1", limit=1), columns='["_bucket"]', rows_bz2=bz2.compress(b'[["a"]]'),
          meta='{"total_rows":1,"returned_rows":1,"truncated":false}')
json.loads(job_response_body(job))
print(sorted(m for m in ("duckdb", "pyarrow") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT / "functions"), "PATH": ""})
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_route_modules_are_the_handlers_of_the_template_s_http_routes() -> None:
    from queryall.handlers.openapi import ROUTE_MODULES
    from queryall_local.template import load_template

    spec = load_template(ROOT / "template.yaml")
    handlers = {spec.functions[route.function].handler for route in spec.routes}
    assert {f"queryall.handlers.{name}.handler" for name in ROUTE_MODULES} == handlers


def test_the_powertools_adapter_still_fits() -> None:
    """What handlers.openapi.documented_copy relies on in Powertools (private, so checked here): a
    Router keeps its routes in `_routes` (key -> function) and `_routes_with_middleware` (key ->
    middlewares), a route's key holds its responses as given, and `include_router` reads those two."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from aws_lambda_powertools.event_handler.api_gateway import Router

    from queryall.handlers.http_api import DOCUMENTED_BY, documented
    from queryall.handlers.openapi import documented_copy

    broken = "Powertools changed what queryall.handlers.openapi.documented_copy relies on: "
    router = Router()

    @router.get("/probe", responses={200: documented("a probe", "api.ErrorResponse")})
    def probe() -> dict:
        return {}

    assert isinstance(getattr(router, "_routes", None), dict) and len(router._routes) == 1, broken + "Router._routes"
    assert isinstance(getattr(router, "_routes_with_middleware", None), dict), broken + "Router._routes_with_middleware"
    (key,) = router._routes
    marked = [part for part in key if isinstance(part, dict) and 200 in part]
    assert marked and DOCUMENTED_BY in json.dumps(marked[0][200]["content"]["application/json"], default=str), (
        broken + "a route's key no longer holds its responses")

    app = APIGatewayHttpResolver()
    copied = documented_copy(router)
    app.include_router(copied)
    document = json.loads(app.get_openapi_json_schema(title="probe", version="0"))
    response = document.get("paths", {}).get("/probe", {}).get("get", {}).get("responses", {}).get("200", {})
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    assert schema.get("$ref") == "#/components/schemas/ErrorResponse", broken + f"include_router gave {response}"
    assert router.api_resolver is not app and router._routes == {key: probe}, broken + "the original router changed"


def test_access_routes_headers_and_errors_are_documented() -> None:
    document = json.loads(openapi_document())
    paths = document["paths"]
    assert {"post", "get"} <= set(paths["/query-all/keys"]) and "delete" in paths["/query-all/keys/{keyId}"]
    submit = paths["/query-all"]["post"]
    assert {"202", "403", "409", "429"} <= set(submit["responses"])
    assert any(p["name"].lower() == "idempotency-key" and p["in"] == "header" for p in submit["parameters"])
    assert any(p["name"] == "all" for p in paths["/query-all/jobs"]["get"]["parameters"])
    assert document["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    assert {"403", "401"} <= set(paths["/query-all/keys"]["post"]["responses"])
