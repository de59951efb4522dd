"""The template and state machine pass the tools AWS uses on them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from tests.template.sam_output import ROOT, TEMPLATE, OfflinePolicyLoader, packaged

DEFINITION = ROOT / "infra" / "statemachine" / "query_all.asl.json"
BIN = Path(sys.executable).parent


def test_cfn_lint_passes() -> None:
    result = subprocess.run([str(BIN / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_translator_transforms_the_template(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(TEMPLATE.read_text())
    output = transform(packaged(template), {}, OfflinePolicyLoader())
    resources = output["Resources"]
    functions = {k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    assert functions == {
        "SubmitFunction", "PollFunction", "SqlGuardFunction", "PlanTargetsFunction",
        "QueryBatchFunction", "AggregateFunction", "FailJobFunction", "WaitFunction", "JobsFunction",
        "ResultsFunction", "DocsFunction", "CatalogApiFunction", "RefreshCatalogFunction",
        "GenerateSqlFunction", "SqlPreviewFunction", "ExecutionStatusFunction",
    } | {"KeysFunction", "TokenApiFunction", "JobEventsFunction", "EventSubmitFunction"}
    # (The token API, plain ApiGatewayV2 resources, has one $default route of its own: not these.)
    routes = {v["Properties"]["RouteKey"] for k, v in resources.items()
              if v["Type"] == "AWS::ApiGatewayV2::Route" and k != "TokenApiRoute"}
    if not routes:  # SAM may inline the routes as an OpenAPI body instead of Route resources
        api = next(v for k, v in resources.items() if v["Type"] == "AWS::ApiGatewayV2::Api" and k != "QueryAllTokenApi")
        routes = {f"{m.upper()} {p}" for p, ops in api["Properties"]["Body"]["paths"].items() for m in ops}
    assert {"POST /query-all", "GET /query-all/jobs/{jobId}", "GET /query-all/wait", "GET /query-all/jobs",
            "DELETE /query-all/jobs/{jobId}", "GET /query-all/jobs/{jobId}/results",
            "GET /openapi.json", "GET /query-all/databases", "POST /query-all/sql",
            "POST /query-all/catalog/refresh", "POST /query-all/keys", "GET /query-all/keys",
            "DELETE /query-all/keys/{keyId}"} <= {r.replace("X-AMAZON-APIGATEWAY-ANY-METHOD", "ANY")
                                                                   for r in routes}
    machine = next(v for v in resources.values() if v["Type"] == "AWS::StepFunctions::StateMachine")
    substitutions = machine["Properties"]["DefinitionSubstitutions"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", DEFINITION.read_text()))
    assert placeholders == set(substitutions)


def test_job_events_come_from_the_jobs_table_stream_at_least_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    resources = transform(packaged(yaml_parse(TEMPLATE.read_text())), {}, OfflinePolicyLoader())["Resources"]
    assert resources["JobsTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    (mapping,) = [v["Properties"] for v in resources.values() if v["Type"] == "AWS::Lambda::EventSourceMapping"
                  and "StreamArn" in str(v["Properties"]["EventSourceArn"])]  # (the SQS submit queue has one too)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["JobsTable", "StreamArn"]}
    assert mapping["FunctionName"] == {"Ref": "JobEventsFunction"}
    assert mapping["BisectBatchOnFunctionError"] is True and mapping["MaximumRetryAttempts"] > 0
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["JobEventsDeadLetterQueue",
                                                                                        "Arn"]}
    environment = resources["JobEventsFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["EVENT_BUS_NAME"] == {"Ref": "EventBusName"}


def test_duckdb_only_where_needed() -> None:
    template = yaml_parse(TEMPLATE.read_text())
    with_layer = {name for name, r in template["Resources"].items()
                  if r["Type"] == "AWS::Serverless::Function" and r["Properties"].get("Layers")}
    # Poll loads pyarrow only for ?format=arrow (tests/unit/test_openapi.py checks its default path).
    # PlanTargets imports duckdb only to list MotherDuck (md:) databases.
    # GenerateSql checks generated SQL with the guard's parser; both question-mode functions ask MotherDuck's
    # prompt_sql through duckdb (SqlPreview imports it on that path alone).
    assert with_layer == {"SqlGuardFunction", "QueryBatchFunction", "AggregateFunction", "PollFunction",
                          "ResultsFunction", "PlanTargetsFunction", "RefreshCatalogFunction",
                          "GenerateSqlFunction", "SqlPreviewFunction"} | {
                          "TokenApiFunction"}  # it serves Poll's and Results' routes for Bearer tokens


def test_state_machine_definition_passes_statelint(tmp_path: Path) -> None:
    text = DEFINITION.read_text()
    json.loads(text)  # the file itself is plain JSON
    substituted = re.sub(
        r"\$\{(\w+)\}", lambda m: f"arn:aws:lambda:us-east-1:123456789012:function:{m.group(1)}", text
    )
    target = tmp_path / "definition.json"
    target.write_text(substituted)
    result = subprocess.run([str(BIN / "statelint"), str(target)], capture_output=True, text=True)
    # statelint 3.1.0 (the latest) predates ReaderConfig.InputType, which Step Functions requires to read
    # a JSON array from S3 (the distributed Map's ItemReader): that one finding is a known false positive.
    known = 'Field "InputType" not allowed in State Machine.States.QueryBatchesDistributed.ItemReader.ReaderConfig'
    problems = [line for line in result.stdout.splitlines() if line.startswith(" ") and line.strip() != known]
    assert result.returncode == 0 or result.stdout.strip() == f"One error:\n {known}", result.stdout + result.stderr
    assert problems == [] and result.stderr == "", result.stdout + result.stderr


@pytest.mark.parametrize("broken", ["missing_next", "bad_resource"])
def test_statelint_rejects_a_broken_definition(tmp_path: Path, broken: str) -> None:
    definition = json.loads(DEFINITION.read_text())
    if broken == "missing_next":
        definition["States"]["PlanTargets"]["Next"] = "NoSuchState"
    else:
        definition["States"]["PlanTargets"]["Resource"] = "not an arn"
    target = tmp_path / "definition.json"
    target.write_text(re.sub(r"\$\{(\w+)\}", "arn:aws:lambda:us-east-1:1:function:x", json.dumps(definition)))
    result = subprocess.run([str(BIN / "statelint"), str(target)], capture_output=True, text=True)
    assert result.returncode != 0


def test_bearer_tokens_pass_an_http_api_jwt_authorizer_on_every_route() -> None:
    resources = yaml_parse(TEMPLATE.read_text())["Resources"]
    authorizer = resources["BearerTokenAuthorizer"]["Properties"]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["JwtConfiguration"] == {"Issuer": {"Ref": "JwtIssuer"}, "Audience": [{"Ref": "JwtAudience"}]}
    route = resources["TokenApiRoute"]["Properties"]
    assert route["RouteKey"] == "$default" and route["AuthorizationType"] == "JWT"
    assert route["AuthorizerId"] == {"Ref": "BearerTokenAuthorizer"}
    # The key API stays without an authorizer: the function checks X-API-Key itself.
    assert "Auth" not in resources["QueryAllApi"]["Properties"]
