"""The local stack for real: moto resources from template.yaml, in-process Lambda behind moto's
Step Functions and boto3, the CLI in a child process.

Moto's state, os.environ and boto3's default session are per process, so there is one local stack
per process. The in-process tests share whichever stack is running (the session stack of
tests/conftest.py when the whole suite runs) or start their own; tests that need a stack of their
own (restarting, the CLI) run it in a child process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from queryall_local.moto_services import STATES_ROLE_ARN
from queryall_local.stack import LocalStack
from queryall_local.template import FunctionSpec, function_arn

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TEMPLATE = ROOT / "template.yaml"
API_KEY = "integration-key"
EXECUTION_TIMEOUT = 20.0


def _echo(logical_id: str, attribute: str, timeout: int = 10) -> FunctionSpec:
    return FunctionSpec(logical_id, f"_echo_handler.{attribute}", timeout, 256, {}, code_dir=HERE)


ECHO_FUNCTIONS = {
    f.logical_id: f
    for f in (
        _echo("EchoFunction", "handler"),
        _echo("FailFunction", "fail"),
        _echo("SlowFunction", "slow"),
        _echo("RecordFunction", "record"),
        _echo("CallOtherFunction", "call_other"),
        _echo("EnvironmentFunction", "environment"),
    )
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    running = LocalStack.active()
    if running is not None:
        assert running.template_path == TEMPLATE.resolve(), "a stack of another template is running"
        yield running
        return
    started = LocalStack(TEMPLATE, tmp_path_factory.mktemp("tenants"), API_KEY)
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def echo(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """The stack's runtime, also serving the test functions of _echo_handler.py for this test."""
    spec = stack.runtime.spec
    extended = dataclasses.replace(spec, functions={**spec.functions, **ECHO_FUNCTIONS})
    monkeypatch.setattr(stack.runtime, "spec", extended)
    return stack


def run_execution(stack: LocalStack, definition: dict[str, Any], payload: Any) -> dict[str, Any]:
    """Create a state machine in moto, run it on ``payload`` and return the finished execution."""
    sfn = stack.client("stepfunctions")
    arn = sfn.create_state_machine(
        name=f"test-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=STATES_ROLE_ARN
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + EXECUTION_TIMEOUT
    while True:
        execution = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            return execution
        if time.monotonic() > deadline:
            pytest.fail(f"execution still RUNNING after {EXECUTION_TIMEOUT} s")
        time.sleep(0.05)


def task(function: str, **extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": function_arn(function), **extra}


# ---------------------------------------------------------------------------- resources


def test_resources_from_template(stack: LocalStack) -> None:
    spec = stack.spec
    dynamodb = stack.client("dynamodb")
    table = dynamodb.describe_table(TableName=stack.dynamodb_table_name)["Table"]
    assert stack.dynamodb_table_name == "queryall-JobsTable"
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == spec.tables["JobsTable"].key_schema
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=stack.dynamodb_table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    s3 = stack.client("s3")
    assert stack.results_bucket_name == "queryall-resultsbucket"
    s3.head_bucket(Bucket=stack.results_bucket_name)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [stack.results_bucket_name]

    parameter = stack.client("ssm").get_parameter(Name=stack.api_keys_parameter_name, WithDecryption=True)
    assert stack.api_keys_parameter_name == "/queryall/api-keys"
    assert parameter["Parameter"]["Type"] == "SecureString"
    # The admin key is an accepted API key too, as the deployed stack requires.
    assert parameter["Parameter"]["Value"] == ",".join([*stack.api_keys, stack.admin_api_key])

    machine = stack.client("stepfunctions").describe_state_machine(stateMachineArn=stack.state_machine_arn)
    assert machine["name"] == "queryall-query-all"  # the template's Name: ${AWS::StackName}-query-all
    assert json.loads(machine["definition"]) == json.loads(spec.state_machines["QueryAllStateMachine"].definition)

    events = stack.client("events")
    assert "default" in [bus["Name"] for bus in events.list_event_buses()["EventBuses"]]
    put = events.put_events(Entries=[{"Source": "queryall.test", "DetailType": "ping", "Detail": "{}"}])
    assert put["FailedEntryCount"] == 0


def test_handler_environment(stack: LocalStack) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == stack.moto_url
    assert os.environ["MOTO_PORT"] == str(stack.moto.port)
    assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert os.environ["POWERTOOLS_METRICS_DISABLED"] == "true"
    assert os.environ["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
    for function in stack.spec.functions.values():
        for key, value in function.environment.items():
            assert os.environ[key] == value
    assert os.environ["STATE_MACHINE_ARN"] == stack.state_machine_arn
    assert stack.tenant_databases == os.environ["TENANT_DATABASES"]
    assert os.environ["TENANT_DATABASES"].endswith("/warehouse_{bucket}.duckdb")
    # Plain boto3, as handlers use it, reaches moto through AWS_ENDPOINT_URL.
    assert stack.dynamodb_table_name in boto3.client("dynamodb").list_tables()["TableNames"]


# ---------------------------------------------------------------------------- Step Functions → Lambda


def test_step_functions_task_runs_handler_in_process(echo: LocalStack) -> None:
    payload = {"job_id": "j-1", "items": [1, 2, 3]}
    execution = run_execution(echo, {"StartAt": "Echo", "States": {"Echo": task("EchoFunction", End=True)}}, payload)
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"], parse_float=Decimal) == {
        "echo": payload,
        "function_name": "EchoFunction",
        "invoked_function_arn": function_arn("EchoFunction"),
        "memory_limit_in_mb": "256",
        "has_time_left": True,
        "exact": Decimal("0.10"),
    }


def test_catch_sees_exception_class_name(echo: LocalStack) -> None:
    definition = {
        "StartAt": "Fail",
        "States": {
            "Fail": task(
                "FailFunction",
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                Next="Caught",
            ),
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    execution = run_execution(echo, definition, {"n": 7})
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["n"] == 7
    assert output["error"]["Error"] == "EchoFailure"
    cause = json.loads(output["error"]["Cause"])
    assert cause["errorType"] == "EchoFailure"
    assert cause["errorMessage"] == 'failed on purpose: {"n": 7}'
    assert isinstance(cause["stackTrace"], list) and any("_echo_handler.py" in line for line in cause["stackTrace"])


def test_uncaught_handler_error_fails_execution(echo: LocalStack) -> None:
    execution = run_execution(echo, {"StartAt": "Fail", "States": {"Fail": task("FailFunction", End=True)}}, {})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "EchoFailure"


def test_map_state_runs_handlers_from_threads(echo: LocalStack) -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 8,
                "ItemSelector": {"item.$": "$$.Map.Item.Value", "seconds": 0.4},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Slow",
                    "States": {"Slow": task("SlowFunction", End=True)},
                },
                "End": True,
            }
        },
    }
    execution = run_execution(echo, definition, {"items": list(range(8))})
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == [{"slept": 0.4, "item": i} for i in range(8)]
    # 8 x 0.4 s one after another would take 3.2 s: the iterations ran side by side.
    assert (execution["stopDate"] - execution["startDate"]).total_seconds() < 2.4


def _batched_map(batch_size: int) -> dict[str, Any]:
    return {"StartAt": "Batches", "States": {"Batches": {
        "Type": "Map", "ItemsPath": "$.items", "End": True,
        "ItemBatcher": {"MaxItemsPerBatch": batch_size},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": True}}}}}}


def test_item_batchers_of_two_state_machines_with_the_same_state_name(stack: LocalStack) -> None:
    # Each state machine's Map state "Batches" batches by its own ItemBatcher, not the last one parsed.
    twos, threes = _batched_map(2), _batched_map(3)
    sfn = stack.client("stepfunctions")
    arns = [sfn.create_state_machine(name=f"batches-{uuid.uuid4().hex[:12]}", definition=json.dumps(d),
                                     roleArn=STATES_ROLE_ARN)["stateMachineArn"] for d in (twos, threes)]
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arns[0])["definition"]) == twos
    outputs = []
    for arn in arns:
        execution_arn = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": [1, 2, 3, 4, 5]}))[
            "executionArn"]
        deadline = time.monotonic() + EXECUTION_TIMEOUT
        while (execution := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution still RUNNING"
            time.sleep(0.05)
        assert execution["status"] == "SUCCEEDED", execution
        outputs.append(json.loads(execution["output"]))
    assert outputs == [[{"Items": [1, 2]}, {"Items": [3, 4]}, {"Items": [5]}],
                       [{"Items": [1, 2, 3]}, {"Items": [4, 5]}]]


# ---------------------------------------------------------------------------- boto3 lambda.Invoke


def test_boto3_invoke_is_answered_in_process(echo: LocalStack) -> None:
    client = boto3.client("lambda")
    for name in ("EchoFunction", function_arn("EchoFunction"), "EchoFunction:$LATEST"):
        response = client.invoke(FunctionName=name, Payload=json.dumps({"via": name}))
        assert response["StatusCode"] == 200
        assert response["ExecutedVersion"] == "$LATEST"
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read())["echo"] == {"via": name}

    failed = client.invoke(FunctionName="FailFunction", Payload=b'{"x": 1}')
    assert (failed["StatusCode"], failed["FunctionError"]) == (200, "Unhandled")
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "EchoFailure"
    assert error["errorMessage"] == 'failed on purpose: {"x": 1}'
    assert isinstance(error["stackTrace"], list)


def test_hook_reaches_sessions_created_later(echo: LocalStack) -> None:
    # A handler (or library) that builds its own session still gets in-process invocation.
    client = boto3.session.Session().client("lambda")
    assert json.loads(client.invoke(FunctionName="EchoFunction", Payload=b"{}")["Payload"].read())["echo"] == {}
    boto3.setup_default_session()
    client = boto3.client("lambda")
    assert json.loads(client.invoke(FunctionName="EchoFunction", Payload=b"[1]")["Payload"].read())["echo"] == [1]


def test_unknown_function_goes_to_moto(echo: LocalStack) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        boto3.client("lambda").invoke(FunctionName="NoSuchFunction", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_event_invocation_runs_in_background(echo: LocalStack) -> None:
    module = sys.modules[echo.runtime.handler("RecordFunction").__module__]
    module.RECORDED.clear()
    module.RECORDED_EVENT.clear()
    response = boto3.client("lambda").invoke(
        FunctionName="RecordFunction", InvocationType="Event", Payload=json.dumps({"n": 1})
    )
    assert response["StatusCode"] == 202
    assert module.RECORDED_EVENT.wait(10)
    assert module.RECORDED == [{"n": 1}]


def test_handler_invoking_another_function(echo: LocalStack) -> None:
    result = echo.runtime.invoke("CallOtherFunction", {"target": "FailFunction", "payload": {"k": "v"}})
    assert result["status"] == 200
    assert result["function_error"] == "Unhandled"
    assert result["payload"]["errorType"] == "EchoFailure"
    result = echo.runtime.invoke("CallOtherFunction", {"target": "EchoFunction", "payload": {"k": "v"}})
    assert (result["function_error"], result["payload"]["echo"]) == (None, {"k": "v"})


def test_runtime_invoke_raises_handler_exception(echo: LocalStack) -> None:
    module = sys.modules[echo.runtime.handler("FailFunction").__module__]
    with pytest.raises(module.EchoFailure, match="failed on purpose"):
        echo.runtime.invoke("FailFunction", {})
    with pytest.raises(LookupError):
        echo.runtime.invoke("NoSuchFunction", {})


# ---------------------------------------------------------------------------- child processes


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_"))}
    paths = [str(ROOT / "functions"), str(ROOT / "infra" / "local")]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("QUERYALL_API_KEY", None)
    env.pop("QUERYALL_TENANTS_DIR", None)
    return env


def cli(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "queryall_local", *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


RESTART_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, urllib.error, urllib.request
    from queryall_local.stack import LocalStack

    environ_before = dict(os.environ)
    for round in range(2):
        with LocalStack(sys.argv[1], sys.argv[2], f"key-{round}") as stack:
            dynamodb = stack.client("dynamodb")
            # The second stack starts from empty moto state, not the first one's leftovers.
            assert dynamodb.scan(TableName=stack.dynamodb_table_name)["Items"] == [], round
            dynamodb.put_item(TableName=stack.dynamodb_table_name, Item={"job_id": {"S": "left-over"}})
            value = stack.client("ssm").get_parameter(Name="/queryall/api-keys", WithDecryption=True)
            assert value["Parameter"]["Value"] == f"key-{round},{stack.admin_api_key}"
            assert os.environ["AWS_ENDPOINT_URL"] == stack.moto_url
            request = urllib.request.Request(stack.url + "/not-a-route", headers={"x-api-key": f"key-{round}"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            print(json.dumps({"round": round, "status": status, "url": stack.url}), flush=True)
    assert dict(os.environ) == environ_before, set(os.environ.items()) ^ set(environ_before.items())
    print("OK", flush=True)
    """
)


def test_start_twice_in_one_process(tmp_path: Path) -> None:
    (tmp_path / "tenants").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", RESTART_SCRIPT, str(TEMPLATE), str(tmp_path / "tenants")],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "OK"
    # (handler logs, e.g. of the catalog refresh the stack fires at start, are JSON lines too)
    rounds = [json.loads(line) for line in lines if line.startswith('{"round"')]
    assert [r["round"] for r in rounds] == [0, 1]
    # Both gateways answered through the template's $default route (any HTTP status, never a hang).
    assert all(100 <= r["status"] < 600 for r in rounds)


PROCESS_STATE_SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    import boto3, botocore.handlers
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
    from queryall_local.gateway import LocalGateway
    from queryall_local.stack import LocalStack
    import moto.core  # on import moto adds its (idle) stubber to BUILTIN_HANDLERS for good: not ours to undo

    def state():
        return {"environ": dict(os.environ), "sys.path": list(sys.path),
                "botocore handlers": list(botocore.handlers.BUILTIN_HANDLERS),
                "powertools log_format": LambdaPowertoolsFormatter.__dict__.get("log_format"),
                "default session": boto3.DEFAULT_SESSION,
                "logger levels": {n: logging.getLogger(n).level for n in ("werkzeug", "moto.stepfunctions.parser")}}

    def differences(before, after):
        return {key: str(before[key])[-300:] + " -> " + str(after[key])[-300:] for key in before
                if before[key] != after[key]}

    os.environ["AWS_PROFILE"] = "hidden-while-the-stack-runs"
    before = state()
    with LocalStack(sys.argv[1], sys.argv[2], "k") as stack:
        stack.client("dynamodb").list_tables()
        stack.client("stepfunctions").list_state_machines()
        stack.runtime.invoke("PollFunction", {"pathParameters": {"jobId": "j"}, "headers": {}})
        assert "AWS_PROFILE" not in os.environ and os.environ["MOTO_PORT"]
        assert state() != before
    assert not differences(before, state()), differences(before, state())

    class Broken(Exception):
        pass

    def broken_start(self):
        raise Broken("the gateway fails to start")

    LocalGateway.start = broken_start  # after moto, the runtime and its environment
    try:
        LocalStack(sys.argv[1], sys.argv[2], "k").start()
    except Broken:
        pass
    else:
        raise AssertionError("start did not fail")
    assert not differences(before, state()), differences(before, state())
    assert LocalStack.active() is None
    print("OK", flush=True)
    """
)


def test_start_and_stop_leave_the_process_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "tenants").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", PROCESS_STATE_SCRIPT, str(TEMPLATE), str(tmp_path / "tenants")],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().splitlines()[-1] == "OK"


ECHO_TEMPLATE = f"""
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    CodeUri: {HERE}
    Timeout: 10
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: _echo_handler.handler
      Events:
        Get:
          Type: HttpApi
          Properties:
            Path: /items/{{itemId}}
            Method: GET
  FailFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: _echo_handler.fail
  HttpFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: _echo_handler.http
      Events:
        Items:
          Type: HttpApi
          Properties:
            Path: /things/{{thingId}}
            Method: ANY
"""


@pytest.fixture
def echo_template(tmp_path: Path) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(ECHO_TEMPLATE)
    (tmp_path / "tenants").mkdir()
    return path


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        return ""
    return process.stdout.readline()


def test_cli_serve_until_sigterm(echo_template: Path, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "queryall_local",
            "local",
            "serve",
            "--port",
            "0",
            "--template",
            str(echo_template),
            "--tenants-dir",
            "tenants",
            "--api-key",
            "k-1",
        ],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(process, 60)
        assert "ready" in line, (line, process.poll())
        assert "api key k-1" in line and "(0 databases)" in line
        url = line.split(" at ", 1)[1].split()[0]
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1"
        with urllib.request.urlopen(url + "/things/t-9?a=1&a=2", timeout=10) as response:
            assert response.status == 201
            assert response.headers["x-route"] == "ANY /things/{thingId}"
            assert json.loads(response.read()) == {"path": {"thingId": "t-9"}, "query": {"a": "1,2"}}
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(url + "/unrouted", timeout=10)
        assert raised.value.code == 404  # this template has no $default route
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_cli_serve_port_in_use(echo_template: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(
            "local",
            "serve",
            "--port",
            str(port),
            "--template",
            str(echo_template),
            "--tenants-dir",
            "tenants",
            cwd=tmp_path,
        )
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ready" not in result.stdout


def test_cli_serve_missing_tenants_dir(tmp_path: Path) -> None:
    result = cli("local", "serve", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "queryall local seed" in result.stderr and ".queryall/tenants" in result.stderr


def test_cli_invoke(echo_template: Path, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"hello": "world"}))
    result = cli("local", "invoke", "EchoFunction", "-e", str(event), "--template", str(echo_template), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout)
    assert output["echo"] == {"hello": "world"}
    assert output["function_name"] == "EchoFunction"

    failed = cli("local", "invoke", "FailFunction", "-e", str(event), "--template", str(echo_template), cwd=tmp_path)
    assert failed.returncode == 1
    error = json.loads(failed.stdout)
    assert error["errorType"] == "EchoFailure"
    assert error["errorMessage"] == 'failed on purpose: {"hello": "world"}'

    unknown = cli("local", "invoke", "Nope", "-e", str(event), "--template", str(echo_template), cwd=tmp_path)
    assert unknown.returncode == 2 and "EchoFunction" in unknown.stderr


def test_cli_seed(tmp_path: Path) -> None:
    try:
        import queryall_local.seed  # noqa: F401
    except ImportError:
        pytest.skip("queryall_local.seed is not there yet")
    result = cli("local", "seed", "--tenants-dir", "seeded", "--tenants", "3", "--rows-scale", "0.05", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 tenant databases" in result.stdout
    assert len(list((tmp_path / "seeded").glob("*.duckdb"))) == 3
