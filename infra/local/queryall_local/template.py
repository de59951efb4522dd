"""Read the SAM template (the single source of truth) into plain specs for the local stack.

The local stack never keeps its own list of functions, routes, tables or buckets: everything it
runs comes from ``template.yaml`` through :func:`load_template`. Intrinsic functions are resolved
to local names/ARNs only where the local stack needs the value (handlers, environment, routes,
tables, buckets, state machine definitions); IAM policies and other deploy-only properties are
never resolved, so intrinsics the local stack cannot emulate only fail where they would matter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from samtranslator.yaml_helper import yaml_parse

STACK_NAME = "queryall"
REGION = "us-east-1"
# moto's default account: ARNs we compute must equal the ones moto hands back.
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
LOCAL_API_ID = "localapi"
DEFAULT_ROUTE_KEY = "$default"

# AWS defaults when neither the function nor Globals say otherwise.
_DEFAULT_TIMEOUT = 3
_DEFAULT_MEMORY = 128

_FUNCTION_TYPES = {"AWS::Serverless::Function"}
_TABLE_TYPES = {"AWS::DynamoDB::Table"}
_BUCKET_TYPES = {"AWS::S3::Bucket"}
_STATE_MACHINE_TYPES = {"AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"}
_HTTP_API_TYPES = {"AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"}
_QUEUE_TYPES = {"AWS::SQS::Queue"}
_IMPLICIT_HTTP_API = "ServerlessHttpApi"  # what SAM calls the API it creates for events without ApiId

_PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": URL_SUFFIX,
    "AWS::StackName": STACK_NAME,
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
}

_NO_VALUE = object()  # what Ref AWS::NoValue resolves to: its property or list item is dropped
_SUB_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_ASL_PLACEHOLDER = re.compile(r"\$\{[A-Za-z0-9_.:]+\}")


class TemplateError(ValueError):
    """The template cannot be run locally; the message names the resource and property."""


# --------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str  # "module.path.func"
    timeout: int  # seconds
    memory: int  # MB
    environment: dict[str, str]
    runtime: str = "python3.12"
    code_dir: Path | None = None  # directory holding the handler's package (CodeUri)
    name: str = ""  # deployed function name; the logical id unless FunctionName is set

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.logical_id)

    @property
    def arn(self) -> str:
        return function_arn(self.name)

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0].replace("/", ".")

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class RouteSpec:
    method: str  # upper case; "ANY" matches every method
    path: str  # "/query-all/jobs/{jobId}" or "$default"
    function: str  # logical id of the integration's function

    @property
    def route_key(self) -> str:
        return DEFAULT_ROUTE_KEY if self.path == DEFAULT_ROUTE_KEY else f"{self.method} {self.path}"


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    billing_mode: str = "PROVISIONED"
    ttl_attribute: str | None = None  # set only when TTL is enabled
    global_secondary_indexes: list[dict[str, Any]] = field(default_factory=list)
    local_secondary_indexes: list[dict[str, Any]] = field(default_factory=list)
    provisioned_throughput: dict[str, int] | None = None
    stream_view_type: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self.name}"


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: str

    @property
    def arn(self) -> str:
        return f"arn:{PARTITION}:s3:::{self.name}"


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    definition: str  # ASL JSON with DefinitionSubstitutions applied
    type: str = "STANDARD"

    @property
    def arn(self) -> str:
        return state_machine_arn(self.name)


@dataclass(frozen=True)
class ScheduleSpec:
    """A function's `Schedule` event: SAM makes it an EventBridge rule targeting the function."""

    name: str  # the rule's name
    function: str  # logical id of the target function
    expression: str  # "rate(15 minutes)" or "cron(...)"


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    visibility_timeout: int | None = None
    dead_letter_queue: str | None = None  # the RedrivePolicy's target, by queue name
    max_receive_count: int | None = None

    @property
    def arn(self) -> str:
        return queue_arn(self.name)

    @property
    def url(self) -> str:
        return queue_url(self.name)


@dataclass(frozen=True)
class QueueSourceSpec:
    """A function's `SQS` event: Lambda polls the queue and hands the function batches of messages."""

    function: str  # logical id of the function
    queue: str  # queue name
    batch_size: int = 10
    report_batch_item_failures: bool = False


@dataclass(frozen=True)
class EventRuleSpec:
    """A function's `EventBridgeRule` event: SAM makes it an EventBridge rule (on the default bus unless
    `EventBusName` says otherwise) whose target is the function."""

    name: str  # the rule's name
    function: str  # logical id of the target function
    pattern: dict[str, Any]  # the rule's event pattern, intrinsics resolved
    bus: str = "default"


@dataclass(frozen=True)
class TableStreamSpec:
    """A function's `DynamoDB` event: an event source mapping reading a table's stream into the function."""

    function: str  # logical id of the consumer function
    table: str  # logical id of the table whose stream it reads
    batch_size: int = 100
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1  # -1: until the record leaves the stream
    report_batch_item_failures: bool = False


@dataclass(frozen=True)
class StackSpec:
    template_path: Path
    root: Path  # directory of the template; CodeUri and DefinitionUri are relative to it
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]
    routes: list[RouteSpec]
    tables: dict[str, TableSpec]
    buckets: dict[str, BucketSpec]
    state_machines: dict[str, StateMachineSpec]
    api_id: str = LOCAL_API_ID
    region: str = REGION
    account_id: str = ACCOUNT_ID
    schedules: list[ScheduleSpec] = field(default_factory=list)
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    queue_sources: list[QueueSourceSpec] = field(default_factory=list)
    event_rules: list[EventRuleSpec] = field(default_factory=list)
    table_streams: list[TableStreamSpec] = field(default_factory=list)

    def queues_by_name(self) -> dict[str, QueueSpec]:
        return {queue.name: queue for queue in self.queues.values()}

    def function(self, name_or_arn: str) -> FunctionSpec | None:
        """The function called ``name_or_arn`` (logical id, function name, full or partial ARN)."""
        name = function_name_from_identifier(name_or_arn)
        if name in self.functions:
            return self.functions[name]
        for spec in self.functions.values():
            if spec.name == name:
                return spec
        return None


def function_arn(name: str) -> str:
    return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"


def state_machine_arn(name: str) -> str:
    return f"arn:{PARTITION}:states:{REGION}:{ACCOUNT_ID}:stateMachine:{name}"


def queue_arn(name: str) -> str:
    return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def queue_url(name: str) -> str:
    return f"https://sqs.{REGION}.{URL_SUFFIX}/{ACCOUNT_ID}/{name}"


def function_name_from_identifier(identifier: str) -> str:
    """Lambda accepts a name, ``name:qualifier``, a partial ARN or a full ARN; reduce to the name."""
    if ":function:" in identifier:  # full ARN or partial "123456789012:function:name"
        identifier = identifier.split(":function:", 1)[1]
    return identifier.split(":", 1)[0]  # drop a ":qualifier" (version or alias)


# --------------------------------------------------------------------------------------------
# Reading the template: the SAM translator's own YAML reader, so short-form intrinsics
# (``!Ref X``, ``!GetAtt A.B``, ``!Sub s``) are read exactly as ``sam deploy`` reads them.


def read_template(path: Path) -> dict[str, Any]:
    """The template as plain data, short-form intrinsics expanded to ``{"Ref": ...}`` etc."""
    try:
        data = yaml_parse(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path}: no Resources section")
    return data


# --------------------------------------------------------------------------------------------
# Intrinsic resolution


class _Resolver:
    def __init__(
        self,
        resources: Mapping[str, Any],
        parameters: Mapping[str, str],
        conditions: Mapping[str, Any] | None = None,
    ) -> None:
        self._resources = resources
        self._parameters = parameters
        self._conditions = conditions or {}
        self._evaluated: dict[str, bool] = {}

    def condition(self, name: Any, where: str) -> bool:
        """The value of the template's condition ``name`` (Conditions section), with these parameters."""
        if not isinstance(name, str) or name not in self._conditions:
            raise TemplateError(f"{where}: unknown condition {name!r}")
        if name not in self._evaluated:
            self._evaluated[name] = self._truth(self._conditions[name], f"Condition {name}")
        return self._evaluated[name]

    def _truth(self, value: Any, where: str) -> bool:
        # The condition functions CloudFormation allows in a Conditions section.
        if not (isinstance(value, dict) and len(value) == 1):
            raise TemplateError(f"{where}: not a condition function: {value!r}")
        key, arg = next(iter(value.items()))
        if key == "Condition":
            return self.condition(arg, where)
        if key == "Fn::Equals" and isinstance(arg, list) and len(arg) == 2:
            left, right = (_stringify(self.resolve(a, where)) for a in arg)
            return left == right
        if key == "Fn::Not" and isinstance(arg, list) and len(arg) == 1:
            return not self._truth(arg[0], where)
        if key == "Fn::And" and isinstance(arg, list):
            return all(self._truth(a, where) for a in arg)
        if key == "Fn::Or" and isinstance(arg, list):
            return any(self._truth(a, where) for a in arg)
        raise TemplateError(f"{where}: condition function {key} is not supported by the local stack")

    def resolve(self, value: Any, where: str) -> Any:
        """Resolve intrinsics in ``value``; ``where`` ("Resource X, property Y") is used in errors."""
        if isinstance(value, list):
            items = [self.resolve(item, where) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref":
                return self._ref(arg, where)
            if key == "Fn::GetAtt":
                return self._get_att(arg, where)
            if key == "Fn::Sub":
                return self._sub(arg, where)
            if key == "Fn::Join":
                return self._join(arg, where)
            if key == "Fn::Select":
                return self._select(arg, where)
            if key == "Fn::Split":
                if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
                    raise TemplateError(f"{where}: Fn::Split needs [delimiter, string]")
                return str(self.resolve(arg[1], where)).split(arg[0])
            if key == "Fn::If":
                if not (isinstance(arg, list) and len(arg) == 3):
                    raise TemplateError(f"{where}: Fn::If needs [condition, value if true, value if false]")
                return self.resolve(arg[1] if self.condition(arg[0], where) else arg[2], where)
            if key.startswith("Fn::") or key == "Condition":
                raise TemplateError(f"{where}: intrinsic {key} is not supported by the local stack")
        resolved = {k: self.resolve(v, where) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref needs a name, got {name!r}")
        if name == "AWS::NoValue":  # the property or list item is left out
            return _NO_VALUE
        if name in _PSEUDO_PARAMETERS:
            return _PSEUDO_PARAMETERS[name]
        if name in self._parameters:
            return self._parameters[name]
        resource = self._resources.get(name)
        if resource is None:
            raise TemplateError(f"{where}: Ref to unknown parameter or resource {name!r}")
        rtype = resource.get("Type", "")
        props = resource.get("Properties") or {}
        if rtype in _FUNCTION_TYPES:
            return self._function_name(name, props)
        if rtype in _TABLE_TYPES:
            return self._table_name(name, props)
        if rtype in _BUCKET_TYPES:
            return self._bucket_name(name, props)
        if rtype in _STATE_MACHINE_TYPES:
            return state_machine_arn(self._state_machine_name(name, props))
        if rtype in _HTTP_API_TYPES:
            return LOCAL_API_ID
        if rtype in _QUEUE_TYPES:
            return queue_url(self._queue_name(name, props))
        if rtype in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1"
        # Anything else: its Ref is an opaque physical id the local stack never dereferences.
        return f"{STACK_NAME}-{name}"

    def _get_att(self, arg: Any, where: str) -> str:
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            raise TemplateError(f"{where}: Fn::GetAtt needs [Resource, Attribute], got {arg!r}")
        name, attribute = arg
        resource = self._resources.get(name)
        if resource is None:
            raise TemplateError(f"{where}: Fn::GetAtt of unknown resource {name!r}")
        rtype = resource.get("Type", "")
        props = resource.get("Properties") or {}
        if rtype in _FUNCTION_TYPES and attribute == "Arn":
            return function_arn(self._function_name(name, props))
        if rtype in _TABLE_TYPES and attribute == "Arn":
            return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self._table_name(name, props)}"
        if rtype in _BUCKET_TYPES:
            bucket = self._bucket_name(name, props)
            if attribute == "Arn":
                return f"arn:{PARTITION}:s3:::{bucket}"
            if attribute in ("DomainName", "RegionalDomainName"):
                return f"{bucket}.s3.{URL_SUFFIX}"
        if rtype in _QUEUE_TYPES and attribute in ("Arn", "QueueName", "QueueUrl"):
            queue = self._queue_name(name, props)
            return {"Arn": queue_arn(queue), "QueueName": queue, "QueueUrl": queue_url(queue)}[attribute]
        if rtype in _STATE_MACHINE_TYPES:
            sm_name = self._state_machine_name(name, props)
            if attribute == "Arn":
                return state_machine_arn(sm_name)
            if attribute == "Name":
                return sm_name
        raise TemplateError(f"{where}: Fn::GetAtt {name}.{attribute} ({rtype}) is not supported locally")

    def _sub(self, arg: Any, where: str) -> str:
        variables: dict[str, Any] = {}
        if isinstance(arg, list):
            if len(arg) != 2 or not isinstance(arg[0], str) or not isinstance(arg[1], dict):
                raise TemplateError(f"{where}: Fn::Sub needs a string or [string, {{vars}}]")
            text, variables = arg[0], {k: self.resolve(v, where) for k, v in arg[1].items()}
        elif isinstance(arg, str):
            text = arg
        else:
            raise TemplateError(f"{where}: Fn::Sub needs a string, got {arg!r}")

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):  # "${!Literal}" is an escaped literal "${Literal}"
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and not token.startswith("AWS::"):
                resource, attribute = token.split(".", 1)
                return self._get_att([resource, attribute], where)
            return self._ref(token, where)

        return _SUB_PLACEHOLDER.sub(replace, text)

    def _join(self, arg: Any, where: str) -> str:
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
            raise TemplateError(f"{where}: Fn::Join needs [delimiter, [values]]")
        values = self.resolve(arg[1], where)
        if not isinstance(values, list):
            raise TemplateError(f"{where}: Fn::Join needs a list of values")
        return arg[0].join(str(v) for v in values)

    def _select(self, arg: Any, where: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{where}: Fn::Select needs [index, [values]]")
        index, values = self.resolve(arg[0], where), self.resolve(arg[1], where)
        try:
            return values[int(index)]
        except (ValueError, TypeError, IndexError) as exc:
            raise TemplateError(f"{where}: Fn::Select index {index!r} out of range") from exc

    # Physical names. An explicit name property wins, as in CloudFormation; it must be a literal
    # or resolve without referring back to this resource.
    def _named(self, name: str, props: Mapping[str, Any], key: str, default: str) -> str:
        if key in props:
            value = self.resolve(props[key], f"Resource {name}, property {key}")
            return str(value)
        return default

    def _function_name(self, name: str, props: Mapping[str, Any]) -> str:
        return self._named(name, props, "FunctionName", name)

    def _table_name(self, name: str, props: Mapping[str, Any]) -> str:
        return self._named(name, props, "TableName", f"{STACK_NAME}-{name}")

    def _bucket_name(self, name: str, props: Mapping[str, Any]) -> str:
        return self._named(name, props, "BucketName", f"{STACK_NAME}-{name}".lower())

    def _queue_name(self, name: str, props: Mapping[str, Any]) -> str:
        return self._named(name, props, "QueueName", f"{STACK_NAME}-{name}")

    def _state_machine_name(self, name: str, props: Mapping[str, Any]) -> str:
        return self._named(name, props, "Name" if "Name" in props else "StateMachineName", name)


def resolve_locally(value: Any, template: Mapping[str, Any], parameters: Mapping[str, str]) -> Any:
    """``value`` with its intrinsics resolved to the local names and ARNs the local stack uses.

    For comparing the local stack's reading of a template with another reader's (the SAM translator
    keeps intrinsics in its output): resolve both sides the same way, then compare.
    """
    return _Resolver(template["Resources"], parameters, template.get("Conditions")).resolve(value, "value")


def resource_exists(logical_id: str, template: Mapping[str, Any], parameters: Mapping[str, str]) -> bool:
    """Whether CloudFormation creates ``logical_id`` with these parameters (its ``Condition`` holds)."""
    condition = (template["Resources"].get(logical_id) or {}).get("Condition")
    if condition is None:
        return True
    return _Resolver(template["Resources"], parameters, template.get("Conditions")).condition(
        condition, f"Resource {logical_id}")


# --------------------------------------------------------------------------------------------
# Loading


def _parameters(template: Mapping[str, Any], overrides: Mapping[str, Any], path: Path) -> dict[str, str]:
    declared: dict[str, Any] = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"{path}: parameter override(s) not declared in the template: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, decl in declared.items():
        decl = decl or {}
        if name in overrides:
            raw = overrides[name]
        elif "Default" in decl:
            raw = decl["Default"]
        else:
            continue  # only an error if something the local stack needs refers to it
        value = _stringify(raw)
        _check_parameter(name, decl, value, path)
        values[name] = value
    return values


def _check_parameter(name: str, decl: Mapping[str, Any], value: str, path: Path) -> None:
    # Same constraints CloudFormation enforces at deploy time, so a bad override fails here too.
    where = f"{path}: parameter {name}={value!r}"
    allowed = decl.get("AllowedValues")
    if allowed is not None and value not in [_stringify(v) for v in allowed]:
        raise TemplateError(f"{where} is not one of {allowed}")
    pattern = decl.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise TemplateError(f"{where} does not match {pattern}")
    if decl.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"{where} is not a number") from None
        if "MinValue" in decl and number < float(decl["MinValue"]):
            raise TemplateError(f"{where} is below MinValue {decl['MinValue']}")
        if "MaxValue" in decl and number > float(decl["MaxValue"]):
            raise TemplateError(f"{where} is above MaxValue {decl['MaxValue']}")


def _stringify(value: Any) -> str:
    # CloudFormation hands every parameter and environment value to Lambda as a string.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_stringify(v) for v in value)
    return str(value)


def _as_int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TemplateError(f"{where}: expected an integer, got {value!r}") from None


def _load_function(
    logical_id: str,
    resource: Mapping[str, Any],
    globals_fn: Mapping[str, Any],
    resolver: _Resolver,
    root: Path,
) -> FunctionSpec:
    props = resource.get("Properties") or {}

    def prop(key: str, default: Any = None) -> Any:
        raw = props.get(key, globals_fn.get(key, default))
        return resolver.resolve(raw, f"Resource {logical_id}, property {key}")

    handler = prop("Handler")
    if not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"Resource {logical_id}: Handler must look like 'module.function', got {handler!r}")
    runtime = str(prop("Runtime", "python3.12"))
    code_uri = prop("CodeUri")
    code_dir = (root / code_uri).resolve() if isinstance(code_uri, str) else None

    environment: dict[str, str] = {}
    for source, where in (
        (((globals_fn.get("Environment") or {}).get("Variables")) or {}, "Globals.Function.Environment"),
        (((props.get("Environment") or {}).get("Variables")) or {}, "Environment"),
    ):
        for key, raw in source.items():
            value = resolver.resolve(raw, f"Resource {logical_id}, {where} variable {key}")
            if value is not _NO_VALUE:
                environment[key] = _stringify(value)

    return FunctionSpec(
        logical_id=logical_id,
        handler=handler,
        timeout=_as_int(prop("Timeout", _DEFAULT_TIMEOUT), f"Resource {logical_id}, property Timeout"),
        memory=_as_int(prop("MemorySize", _DEFAULT_MEMORY), f"Resource {logical_id}, property MemorySize"),
        environment=environment,
        runtime=runtime,
        code_dir=code_dir,
        name=resolver._function_name(logical_id, props),
    )


def _load_routes(logical_id: str, resource: Mapping[str, Any], resolver: _Resolver) -> list[tuple[str, RouteSpec]]:
    routes: list[tuple[str, RouteSpec]] = []
    events = (resource.get("Properties") or {}).get("Events") or {}
    for event_id, event in events.items():
        if (event or {}).get("Type") != "HttpApi":
            continue
        where = f"Resource {logical_id}, event {event_id}"
        eprops = event.get("Properties") or {}
        api = eprops.get("ApiId")
        if isinstance(api, dict) and set(api) == {"Ref"}:
            api_name = api["Ref"]
        elif api is None:
            api_name = _IMPLICIT_HTTP_API
        else:
            raise TemplateError(f"{where}: ApiId must be a !Ref to an HttpApi resource")
        # SAM: an HttpApi event without Path/Method is the API's $default route for every method.
        path = str(resolver.resolve(eprops.get("Path", DEFAULT_ROUTE_KEY), where))
        method = str(resolver.resolve(eprops.get("Method", "ANY"), where)).upper()
        if path != DEFAULT_ROUTE_KEY and not path.startswith("/"):
            raise TemplateError(f"{where}: Path must start with '/' or be $default, got {path!r}")
        routes.append((api_name, RouteSpec(method=method, path=path, function=logical_id)))
    return routes


def _load_schedules(logical_id: str, resource: Mapping[str, Any], resolver: _Resolver) -> list[ScheduleSpec]:
    events = (resource.get("Properties") or {}).get("Events") or {}
    return [
        ScheduleSpec(name=f"{STACK_NAME}-{logical_id}{event_id}", function=logical_id,
                     expression=str(resolver.resolve((event.get("Properties") or {}).get("Schedule"),
                                                     f"Resource {logical_id}, event {event_id}")))
        for event_id, event in events.items() if (event or {}).get("Type") == "Schedule"
    ]


def _load_event_rules(logical_id: str, resource: Mapping[str, Any], resolver: _Resolver) -> list[EventRuleSpec]:
    events = (resource.get("Properties") or {}).get("Events") or {}
    rules = []
    for event_id, event in events.items():
        if (event or {}).get("Type") != "EventBridgeRule":
            continue
        where = f"Resource {logical_id}, event {event_id}"
        props = event.get("Properties") or {}
        pattern = resolver.resolve(props.get("Pattern"), where)
        if not isinstance(pattern, dict):
            raise TemplateError(f"{where}: an EventBridgeRule needs a Pattern")
        bus = str(resolver.resolve(props.get("EventBusName", "default"), where))
        rules.append(EventRuleSpec(name=f"{STACK_NAME}-{logical_id}{event_id}", function=logical_id,
                                   pattern=pattern, bus=bus))
    return rules


def _load_table_streams(logical_id: str, resource: Mapping[str, Any], resolver: _Resolver) -> list[TableStreamSpec]:
    streams = []
    for event_id, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
        if (event or {}).get("Type") != "DynamoDB":
            continue
        where = f"Resource {logical_id}, event {event_id}"
        props = event.get("Properties") or {}
        source = props.get("Stream")
        # Only the stream of a table of this template can be read locally.
        if not (isinstance(source, dict) and isinstance(source.get("Fn::GetAtt"), list)
                and source["Fn::GetAtt"][1:] == ["StreamArn"]):
            raise TemplateError(f"{where}: Stream must be !GetAtt <Table>.StreamArn to run locally")

        def value(key: str, default: Any, props: Mapping[str, Any] = props, where: str = where) -> Any:
            return resolver.resolve(props.get(key, default), f"{where}, property {key}")

        streams.append(TableStreamSpec(
            function=logical_id, table=source["Fn::GetAtt"][0],
            batch_size=_as_int(value("BatchSize", 100), where),
            bisect_on_error=str(value("BisectBatchOnFunctionError", False)).lower() == "true",
            maximum_retry_attempts=_as_int(value("MaximumRetryAttempts", -1), where),
            report_batch_item_failures="ReportBatchItemFailures" in (value("FunctionResponseTypes", []) or []),
        ))
    return streams


def _load_queue(logical_id: str, resource: Mapping[str, Any], resolver: _Resolver) -> QueueSpec:
    where = f"Resource {logical_id}"
    props = resource.get("Properties") or {}
    redrive = resolver.resolve(props.get("RedrivePolicy") or {}, f"{where}, property RedrivePolicy")
    target = redrive.get("deadLetterTargetArn")
    return QueueSpec(
        logical_id=logical_id,
        name=resolver._queue_name(logical_id, props),
        visibility_timeout=_as_int(resolver.resolve(props["VisibilityTimeout"], where), where)
        if "VisibilityTimeout" in props else None,
        dead_letter_queue=str(target).rsplit(":", 1)[1] if target else None,
        max_receive_count=_as_int(redrive["maxReceiveCount"], where) if "maxReceiveCount" in redrive else None,
    )


def _load_queue_sources(logical_id: str, resource: Mapping[str, Any], resolver: _Resolver) -> list[QueueSourceSpec]:
    """The function's `SQS` events, as SAM deploys them (event source mappings)."""
    sources: list[QueueSourceSpec] = []
    for event_id, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
        if (event or {}).get("Type") != "SQS":
            continue
        where = f"Resource {logical_id}, event {event_id}"
        props = resolver.resolve(event.get("Properties") or {}, where)
        sources.append(QueueSourceSpec(
            function=logical_id, queue=str(props["Queue"]).rsplit(":", 1)[1],
            batch_size=_as_int(props.get("BatchSize", 10), where),
            report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])))
    return sources


def _load_table(logical_id: str, resource: Mapping[str, Any], resolver: _Resolver) -> TableSpec:
    where = f"Resource {logical_id}"
    raw_props = resource.get("Properties") or {}
    # Only the keys a local table needs; SSE, PITR, tags etc. are deploy-only and never resolved.
    needed = (
        "KeySchema",
        "AttributeDefinitions",
        "BillingMode",
        "TimeToLiveSpecification",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "ProvisionedThroughput",
        "StreamSpecification",
    )
    props = {key: resolver.resolve(raw_props[key], f"{where}, property {key}") for key in needed if key in raw_props}
    for key in ("KeySchema", "AttributeDefinitions"):
        if not props.get(key):
            raise TemplateError(f"{where}: {key} is required")
    ttl = props.get("TimeToLiveSpecification") or {}
    ttl_enabled = str(ttl.get("Enabled", False)).lower() == "true"
    throughput = props.get("ProvisionedThroughput")
    stream = props.get("StreamSpecification") or {}

    def index(spec: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(spec)
        if "ProvisionedThroughput" in out:
            out["ProvisionedThroughput"] = {k: _as_int(v, where) for k, v in out["ProvisionedThroughput"].items()}
        return out

    return TableSpec(
        logical_id=logical_id,
        name=resolver._table_name(logical_id, resource.get("Properties") or {}),
        key_schema=list(props["KeySchema"]),
        attribute_definitions=list(props["AttributeDefinitions"]),
        billing_mode=str(props.get("BillingMode", "PROVISIONED")),
        ttl_attribute=str(ttl["AttributeName"]) if ttl_enabled and ttl.get("AttributeName") else None,
        global_secondary_indexes=[index(i) for i in props.get("GlobalSecondaryIndexes") or []],
        local_secondary_indexes=[index(i) for i in props.get("LocalSecondaryIndexes") or []],
        provisioned_throughput={k: _as_int(v, where) for k, v in throughput.items()} if throughput else None,
        stream_view_type=stream.get("StreamViewType"),
    )


def _load_state_machine(
    logical_id: str, resource: Mapping[str, Any], resolver: _Resolver, root: Path
) -> StateMachineSpec:
    where = f"Resource {logical_id}"
    props = resource.get("Properties") or {}
    if "DefinitionUri" in props:
        uri = resolver.resolve(props["DefinitionUri"], f"{where}, property DefinitionUri")
        if not isinstance(uri, str):
            raise TemplateError(f"{where}: DefinitionUri must be a local file path (S3 locations are not supported)")
        definition_path = root / uri
        try:
            definition = definition_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"{where}: cannot read DefinitionUri {definition_path}: {exc}") from exc
    elif "Definition" in props:
        definition = json.dumps(resolver.resolve(props["Definition"], f"{where}, property Definition"))
    elif "DefinitionString" in props:
        definition = str(resolver.resolve(props["DefinitionString"], f"{where}, property DefinitionString"))
    else:
        raise TemplateError(f"{where}: needs DefinitionUri, Definition or DefinitionString")

    substitutions = props.get("DefinitionSubstitutions") or {}
    for key, raw in substitutions.items():
        value = resolver.resolve(raw, f"{where}, DefinitionSubstitutions.{key}")
        definition = definition.replace("${" + key + "}", _stringify(value))
    leftover = sorted(set(_ASL_PLACEHOLDER.findall(definition)))
    if leftover:
        raise TemplateError(f"{where}: definition placeholders without a DefinitionSubstitution: {', '.join(leftover)}")
    try:
        json.loads(definition)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{where}: definition is not valid JSON after substitution: {exc}") from exc

    return StateMachineSpec(
        logical_id=logical_id,
        name=resolver._state_machine_name(logical_id, props),
        definition=definition,
        type=str(resolver.resolve(props.get("Type", "STANDARD"), f"{where}, property Type")).upper(),
    )


def load_template(path: Path | str, parameter_overrides: Mapping[str, Any] | None = None) -> StackSpec:
    """Parse the SAM template at ``path`` into a :class:`StackSpec` with intrinsics resolved locally.

    ``parameter_overrides`` replaces parameter Defaults (e.g. ``TenantDatabases``); overriding a
    parameter the template does not declare is an error, so typos do not pass silently.
    """
    path = Path(path).resolve()
    template = read_template(path)
    root = path.parent
    parameters = _parameters(template, dict(parameter_overrides or {}), path)
    resources: dict[str, Any] = template["Resources"]
    resolver = _Resolver(resources, parameters, template.get("Conditions"))
    globals_fn: dict[str, Any] = ((template.get("Globals") or {}).get("Function")) or {}

    functions: dict[str, FunctionSpec] = {}
    routes_by_api: dict[str, list[RouteSpec]] = {}
    tables: dict[str, TableSpec] = {}
    buckets: dict[str, BucketSpec] = {}
    state_machines: dict[str, StateMachineSpec] = {}
    schedules: list[ScheduleSpec] = []
    queues: dict[str, QueueSpec] = {}
    queue_sources: list[QueueSourceSpec] = []
    event_rules: list[EventRuleSpec] = []
    table_streams: list[TableStreamSpec] = []
    # Functions with a Condition are read whatever it says (e.g. the token API's, which local serve
    # uses when given its options); tables and buckets, which the local stack creates, only when it holds
    # (the tenants bucket of a default deploy is not made when the stack serves a folder of tenants).
    for logical_id, resource in resources.items():
        rtype = (resource or {}).get("Type", "")
        condition = (resource or {}).get("Condition")
        if (rtype in _TABLE_TYPES | _BUCKET_TYPES and condition is not None
                and not resolver.condition(condition, f"Resource {logical_id}")):
            continue
        if rtype in _FUNCTION_TYPES:
            functions[logical_id] = _load_function(logical_id, resource, globals_fn, resolver, root)
            for api_name, route in _load_routes(logical_id, resource, resolver):
                routes_by_api.setdefault(api_name, []).append(route)
            schedules.extend(_load_schedules(logical_id, resource, resolver))
            event_rules.extend(_load_event_rules(logical_id, resource, resolver))
            table_streams.extend(_load_table_streams(logical_id, resource, resolver))
            queue_sources.extend(_load_queue_sources(logical_id, resource, resolver))
        elif rtype in _QUEUE_TYPES:
            queues[logical_id] = _load_queue(logical_id, resource, resolver)
        elif rtype in _TABLE_TYPES:
            tables[logical_id] = _load_table(logical_id, resource, resolver)
        elif rtype in _BUCKET_TYPES:
            buckets[logical_id] = BucketSpec(
                logical_id, resolver._bucket_name(logical_id, resource.get("Properties") or {})
            )
        elif rtype in _STATE_MACHINE_TYPES:
            state_machines[logical_id] = _load_state_machine(logical_id, resource, resolver, root)

    if len(routes_by_api) > 1:
        raise TemplateError(
            f"{path}: routes belong to several HTTP APIs ({', '.join(sorted(routes_by_api))}); "
            "the local gateway serves one"
        )
    routes = next(iter(routes_by_api.values()), [])
    seen: dict[str, RouteSpec] = {}
    for route in routes:
        if route.route_key in seen:
            raise TemplateError(
                f"{path}: route {route.route_key!r} is declared by both {seen[route.route_key].function} "
                f"and {route.function}"
            )
        seen[route.route_key] = route

    return StackSpec(
        template_path=path,
        root=root,
        parameters=parameters,
        functions=functions,
        routes=routes,
        tables=tables,
        buckets=buckets,
        state_machines=state_machines,
        schedules=schedules,
        queues=queues,
        queue_sources=queue_sources,
        event_rules=event_rules,
        table_streams=table_streams,
    )
