"""template.yaml → StackSpec: the local stack sees exactly what the template declares."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from queryall_local.template import TemplateError, function_arn, load_template, state_machine_arn

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _Tagged:
    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


class _IndependentLoader(yaml.SafeLoader):
    """Keeps intrinsics opaque: this test reads the template without the code under test."""


_IndependentLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: _Tagged(
        suffix,
        loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else loader.construct_object(node),
    ),
)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_IndependentLoader)


def resources_of(raw: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in raw["Resources"].items() if r["Type"] in types}


def test_functions_match_template(raw: dict[str, Any]) -> None:
    spec = load_template(TEMPLATE)
    declared = resources_of(raw, "AWS::Serverless::Function")
    assert declared, "the template declares functions"
    assert set(spec.functions) == set(declared)
    globals_fn = raw["Globals"]["Function"]
    for name, resource in declared.items():
        props = resource["Properties"]
        function = spec.functions[name]
        assert function.logical_id == name
        assert function.name == name
        assert function.arn == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        assert function.handler == props["Handler"]
        assert function.timeout == props.get("Timeout", globals_fn["Timeout"])
        assert function.memory == props.get("MemorySize", globals_fn["MemorySize"])
        expected_keys = set(globals_fn["Environment"]["Variables"]) | set(
            props.get("Environment", {}).get("Variables", {})
        )
        assert set(function.environment) == expected_keys
        assert all(isinstance(v, str) for v in function.environment.values())
        assert function.code_dir == (ROOT / globals_fn["CodeUri"]).resolve()


def test_routes_match_template(raw: dict[str, Any]) -> None:
    spec = load_template(TEMPLATE)
    expected = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"], name)
        for name, resource in resources_of(raw, "AWS::Serverless::Function").items()
        for event in (resource["Properties"].get("Events") or {}).values()
        if event["Type"] == "HttpApi"
    }
    assert expected
    assert {(r.method, r.path, r.function) for r in spec.routes} == expected
    assert len(spec.routes) == len(expected)
    keys = {r.route_key for r in spec.routes}
    assert "$default" in keys
    assert "POST /query-all" in keys and "GET /query-all/jobs/{jobId}" in keys


def test_table_bucket_and_state_machine_match_template(raw: dict[str, Any]) -> None:
    spec = load_template(TEMPLATE)
    tables = resources_of(raw, "AWS::DynamoDB::Table")
    assert set(spec.tables) == set(tables)
    for name, resource in tables.items():
        props = resource["Properties"]
        table = spec.tables[name]
        assert table.name == f"queryall-{name}"
        assert table.key_schema == props["KeySchema"]
        assert table.attribute_definitions == props["AttributeDefinitions"]
        assert table.billing_mode == props["BillingMode"]
        ttl = props.get("TimeToLiveSpecification", {})
        assert table.ttl_attribute == (ttl["AttributeName"] if ttl.get("Enabled") else None)
        assert table.global_secondary_indexes == props.get("GlobalSecondaryIndexes", [])
    assert spec.tables["JobsTable"].ttl_attribute == "expires_at"

    buckets = resources_of(raw, "AWS::S3::Bucket")
    assert set(spec.buckets) == set(buckets)
    for name in buckets:
        assert spec.buckets[name].name == f"queryall-{name}".lower()

    machines = resources_of(raw, "AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
    assert set(spec.state_machines) == set(machines)


def test_intrinsics_resolved_in_environment() -> None:
    spec = load_template(TEMPLATE)
    submit = spec.functions["SubmitFunction"].environment
    assert submit["JOBS_TABLE"] == spec.tables["JobsTable"].name == "queryall-JobsTable"
    assert submit["STATE_MACHINE_ARN"] == state_machine_arn("queryall-query-all")  # Name: ${AWS::StackName}-query-all
    assert submit["STATE_MACHINE_ARN"] == spec.state_machines["QueryAllStateMachine"].arn
    assert submit["SQL_GUARD_FUNCTION"] == "SqlGuardFunction"
    assert submit["API_KEYS_PARAMETER"] == "/queryall/api-keys"
    assert submit["POWERTOOLS_LOG_LEVEL"] == "INFO"
    query = spec.functions["QueryBatchFunction"].environment
    assert query["RESULTS_BUCKET"] == spec.buckets["ResultsBucket"].name == "queryall-resultsbucket"
    assert query["QUERY_TIMEOUT_SECONDS"] == "30"  # Number parameters reach Lambda as strings
    # The default deploy's tenants: s3:// on the bucket the stack creates (test_tenant_storage_template.py).
    assert query["TENANT_DATABASES"] == f"s3://{spec.buckets['TenantsBucket'].name}/warehouse_{{bucket}}.duckdb"
    for function in spec.functions.values():
        for value in function.environment.values():
            assert "${" not in value and not value.startswith("{'")


def test_definition_substitutions_applied(raw: dict[str, Any]) -> None:
    spec = load_template(TEMPLATE)
    machine = spec.state_machines["QueryAllStateMachine"]
    props = raw["Resources"]["QueryAllStateMachine"]["Properties"]
    original = (ROOT / props["DefinitionUri"]).read_text()
    for key in props["DefinitionSubstitutions"]:
        assert "${" + key + "}" in original
    assert "${" not in machine.definition
    definition = json.loads(machine.definition)

    def task_resources(states: dict[str, Any]) -> list[str]:
        found = []
        for state in states.values():
            if state["Type"] == "Task":
                found.append(state["Resource"])
            for nested in ("ItemProcessor", "Iterator"):
                if nested in state:
                    found += task_resources(state[nested]["States"])
        return found

    resources = task_resources(definition["States"])
    assert sorted(set(resources)) == sorted(
        function_arn(name)
        for name in ("PlanTargetsFunction", "QueryBatchFunction", "AggregateFunction", "FailJobFunction",
                     "GenerateSqlFunction")
    )
    assert machine.type == "STANDARD"


def test_parameter_overrides() -> None:
    spec = load_template(TEMPLATE, {"TenantDatabases": "/tmp/t/warehouse_{bucket}.duckdb", "LogLevel": "DEBUG"})
    assert spec.parameters["TenantDatabases"] == "/tmp/t/warehouse_{bucket}.duckdb"
    assert spec.functions["PlanTargetsFunction"].environment["TENANT_DATABASES"] == "/tmp/t/warehouse_{bucket}.duckdb"
    assert spec.functions["QueryBatchFunction"].environment["TENANT_DATABASES"] == "/tmp/t/warehouse_{bucket}.duckdb"
    assert {f.environment["POWERTOOLS_LOG_LEVEL"] for f in spec.functions.values()} == {"DEBUG"}
    assert spec.functions["PlanTargetsFunction"].environment["QUERY_BATCH_SIZE"] == "100"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"NoSuchParameter": "x"}, "NoSuchParameter"),
        ({"LogLevel": "LOUD"}, "LogLevel"),
        ({"QueryBatchSize": "0"}, "MinValue"),
        ({"MapMaxConcurrency": "many"}, "not a number"),
        ({"ApiKeysParameterName": "no-leading-slash"}, "AllowedPattern|does not match"),
    ],
)
def test_bad_overrides_are_rejected(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        load_template(TEMPLATE, overrides)


# ---------------------------------------------------------------------------- small templates


def write(tmp_path: Path, body: str, asl: str | None = None) -> Path:
    if asl is not None:
        (tmp_path / "machine.asl.json").write_text(asl)
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(body))
    return path


BASE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "jobs-${Stage}"
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}, {AttributeName: gk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      GlobalSecondaryIndexes:
        - IndexName: by-gk
          KeySchema: [{AttributeName: gk, KeyType: HASH}]
          Projection: {ProjectionType: ALL}
          ProvisionedThroughput: {ReadCapacityUnits: "2", WriteCapacityUnits: 2}
      ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: pkg/mod.handler
      CodeUri: src/
      Environment:
        Variables:
          PREFIX: !Sub "${Bucket.Arn}/jobs/*"
          JOINED: !Join ["-", [!Ref Stage, !Ref "AWS::Region", !Select [1, [a, b]]]]
          LITERAL: !Sub "${!NotReplaced}"
          FLAG: true
      Policies:
        - Statement:
            - Effect: Allow
              Action: s3:GetObject
              Resource: !ImportValue never-resolved-locally
      Events:
        Any:
          Type: HttpApi
"""


def test_small_template_resolution(tmp_path: Path) -> None:
    spec = load_template(write(tmp_path, BASE), {"Stage": "test"})
    fn = spec.functions["Fn"]
    assert (fn.timeout, fn.memory) == (3, 128)  # AWS defaults without Globals
    assert fn.module == "pkg.mod" and fn.attribute == "handler"
    assert fn.code_dir == (tmp_path / "src").resolve()
    assert fn.environment == {
        "PREFIX": "arn:aws:s3:::queryall-bucket/jobs/*",
        "JOINED": "test-us-east-1-b",
        "LITERAL": "${NotReplaced}",
        "FLAG": "true",
    }
    # An HttpApi event without Path/Method is SAM's catch-all $default route.
    assert [(r.method, r.path, r.route_key) for r in spec.routes] == [("ANY", "$default", "$default")]
    table = spec.tables["Table"]
    assert table.name == "jobs-test"
    assert table.billing_mode == "PROVISIONED"
    assert table.provisioned_throughput == {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
    assert table.global_secondary_indexes[0]["ProvisionedThroughput"] == {
        "ReadCapacityUnits": 2,
        "WriteCapacityUnits": 2,
    }
    assert table.ttl_attribute is None


def test_unsupported_intrinsic_names_the_resource(tmp_path: Path) -> None:
    body = BASE.replace("FLAG: true", "FLAG: !ImportValue shared-flag")
    with pytest.raises(TemplateError, match=r"Resource Fn, .*variable FLAG.*Fn::ImportValue"):
        load_template(write(tmp_path, body))


def test_unknown_ref_names_the_resource(tmp_path: Path) -> None:
    body = BASE.replace("FLAG: true", "FLAG: !Ref Missing")
    with pytest.raises(TemplateError, match=r"Resource Fn.*'Missing'"):
        load_template(write(tmp_path, body))


STATE_MACHINE = """
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: machine.asl.json
      DefinitionSubstitutions:
        FnArn: !GetAtt Fn.Arn
"""
ASL = '{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${FnArn}", "End": true}}}'


def test_state_machine_substitution(tmp_path: Path) -> None:
    spec = load_template(write(tmp_path, BASE + STATE_MACHINE, ASL))
    machine = spec.state_machines["Machine"]
    assert json.loads(machine.definition)["States"]["A"]["Resource"] == function_arn("Fn")
    assert machine.arn == state_machine_arn("Machine")


def test_missing_substitution_is_an_error(tmp_path: Path) -> None:
    asl = ASL.replace("${FnArn}", "${OtherArn}")
    with pytest.raises(TemplateError, match=re.escape("Resource Machine: definition placeholders") + ".*OtherArn"):
        load_template(write(tmp_path, BASE + STATE_MACHINE, asl))


def test_duplicate_route_is_an_error(tmp_path: Path) -> None:
    body = BASE.replace(
        "        Any:\n          Type: HttpApi\n",
        "        Any:\n          Type: HttpApi\n        Again:\n          Type: HttpApi\n",
    )
    with pytest.raises(TemplateError, match=r"route '\$default'"):
        load_template(write(tmp_path, body))
