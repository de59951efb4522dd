"""The local stack reads template.yaml as SAM does: same functions, handlers, settings, environment,
routes, tables, buckets, schedules, event rules, queue event sources and state machine definition.

The SAM translator's output keeps intrinsics (``!Ref JobsTable``); both sides are resolved with the
local stack's names and ARNs before comparing, so what is compared is the reading (Globals merged,
events turned into routes and rules, substitutions applied), which is where the two could drift.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from queryall_local.template import StackSpec, load_template, read_template, resolve_locally
from tests.template.sam_output import ROOT, TEMPLATE, translated

# SAM writes the integration as "arn:...:functions/${PollFunction.Arn}/invocations", or with an
# AutoPublishAlias (SnapStart) as ".../functions/${PollFunctionAliaslive}/invocations": the alias of PollFunction.
_INTEGRATION_TARGET = re.compile(r"\$\{(\w+?)(?:\.Arn|Alias\w+)\}")


@pytest.fixture(scope="module")
def local() -> StackSpec:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return translated()["Resources"]


@pytest.fixture(scope="module")
def resolve(local: StackSpec) -> Any:
    template = read_template(TEMPLATE)
    return lambda value: resolve_locally(value, template, local.parameters)


def _of_type(resources: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v.get("Properties", {}) for k, v in resources.items() if v["Type"] == rtype}


def test_functions(local: StackSpec, sam: dict[str, Any], resolve: Any) -> None:
    functions = _of_type(sam, "AWS::Lambda::Function")
    assert set(local.functions) == set(functions)
    for name, props in functions.items():
        spec = local.functions[name]
        assert spec.handler == props["Handler"], name
        assert spec.runtime == props["Runtime"], name
        assert spec.timeout == int(props.get("Timeout", 3)), name
        assert spec.memory == int(props.get("MemorySize", 128)), name
        if "FunctionName" in props:
            assert spec.name == resolve(props["FunctionName"]), name
        variables = (props.get("Environment") or {}).get("Variables") or {}
        assert spec.environment == {k: str(v) for k, v in resolve(variables).items()}, name


def _sam_routes(sam: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for props in _of_type(sam, "AWS::ApiGatewayV2::Route").values():  # routes as resources
        if props.get("ApiId") == {"Ref": "QueryAllTokenApi"}:
            continue  # the Bearer token API: on AWS only (the local gateway checks tokens itself)
        method, _, path = props["RouteKey"].partition(" ")
        target = _INTEGRATION_TARGET.search(str(props.get("Target")))
        yield (method or "ANY", path or props["RouteKey"], target.group(1) if target else "")
    for props in _of_type(sam, "AWS::ApiGatewayV2::Api").values():  # or inlined as an OpenAPI body
        for path, operations in (props.get("Body") or {}).get("paths", {}).items():
            for method, operation in operations.items():
                uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
                target = _INTEGRATION_TARGET.search(uri)
                assert target, uri
                method = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                yield (method, path, target.group(1))


def test_routes(local: StackSpec, sam: dict[str, Any]) -> None:
    sam_routes = sorted(_sam_routes(sam))
    assert len(sam_routes) > 5
    assert sorted((r.method, r.path, r.function) for r in local.routes) == sam_routes


def test_tables_and_buckets(local: StackSpec, sam: dict[str, Any], resolve: Any) -> None:
    tables = _of_type(sam, "AWS::DynamoDB::Table")
    assert set(local.tables) == set(tables)
    for name, raw in tables.items():
        props, spec = resolve(raw), local.tables[name]
        if "TableName" in props:
            assert spec.name == props["TableName"]
        assert spec.key_schema == props["KeySchema"]
        assert spec.attribute_definitions == props["AttributeDefinitions"]
        assert spec.billing_mode == props.get("BillingMode", "PROVISIONED")
        ttl = props.get("TimeToLiveSpecification") or {}
        assert spec.ttl_attribute == (ttl.get("AttributeName") if ttl.get("Enabled") else None)
        assert spec.global_secondary_indexes == props.get("GlobalSecondaryIndexes", [])
        assert spec.stream_view_type == (props.get("StreamSpecification") or {}).get("StreamViewType")
    buckets = _of_type(sam, "AWS::S3::Bucket")
    assert set(local.buckets) == set(buckets)
    for name, props in buckets.items():
        if "BucketName" in props:
            assert local.buckets[name].name == resolve(props["BucketName"])


def test_schedules(local: StackSpec, sam: dict[str, Any], resolve: Any) -> None:
    rules = [resolve(props) for props in _of_type(sam, "AWS::Events::Rule").values() if "ScheduleExpression" in props]
    assert sorted((rule["ScheduleExpression"], rule["Targets"][0]["Arn"]) for rule in rules) == sorted(
        (schedule.expression, local.functions[schedule.function].arn) for schedule in local.schedules
    )


def test_event_rules(local: StackSpec, sam: dict[str, Any], resolve: Any) -> None:
    rules = [resolve(props) for props in _of_type(sam, "AWS::Events::Rule").values() if "EventPattern" in props]
    assert sorted((repr(rule["EventPattern"]), rule["Targets"][0]["Arn"]) for rule in rules) == sorted(
        (repr(rule.pattern), local.functions[rule.function].arn) for rule in local.event_rules
    )
    assert local.event_rules  # the watchdog's rule at least


def test_event_rule_buses(local: StackSpec, sam: dict[str, Any], resolve: Any) -> None:
    rules = [resolve(props) for props in _of_type(sam, "AWS::Events::Rule").values() if "EventPattern" in props]
    assert sorted((rule.get("EventBusName", "default"), rule["Targets"][0]["Arn"]) for rule in rules) == sorted(
        (rule.bus, local.functions[rule.function].arn) for rule in local.event_rules)


def test_queue_event_sources(local: StackSpec, sam: dict[str, Any], resolve: Any) -> None:
    mappings = [resolve(props) for props in _of_type(sam, "AWS::Lambda::EventSourceMapping").values()
                if props["EventSourceArn"].get("Fn::GetAtt", [None])[0] in local.queues]
    assert mappings
    queues = {queue.arn: queue.name for queue in local.queues.values()}
    assert sorted((queues[m["EventSourceArn"]], m["FunctionName"], int(m.get("BatchSize", 10)),
                   "ReportBatchItemFailures" in (m.get("FunctionResponseTypes") or [])) for m in mappings) == sorted(
        (source.queue, local.functions[source.function].name, source.batch_size, source.report_batch_item_failures)
        for source in local.queue_sources)


def test_state_machine_definition(local: StackSpec, sam: dict[str, Any], resolve: Any) -> None:
    machines = _of_type(sam, "AWS::StepFunctions::StateMachine")
    assert set(local.state_machines) == set(machines)
    source = read_template(TEMPLATE)["Resources"]
    for name, props in machines.items():
        spec = local.state_machines[name]
        assert spec.name == resolve(props["StateMachineName"])
        assert spec.type == props.get("StateMachineType", "STANDARD")
        # SAM uploads the DefinitionUri file as is and leaves the substitutions to Step Functions:
        # apply SAM's substitutions to the file and expect the local stack's definition.
        definition = (ROOT / source[name]["Properties"]["DefinitionUri"]).read_text()
        substitutions = resolve(props.get("DefinitionSubstitutions") or {})
        assert substitutions, name
        for key, value in substitutions.items():
            definition = definition.replace("${" + key + "}", str(value))
        assert spec.definition == definition
