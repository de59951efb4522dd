"""In-process moto server standing in for DynamoDB, S3, Step Functions, SSM and EventBridge.

One ``ThreadedMotoServer`` on 127.0.0.1 serves every AWS service; :func:`provision` creates the
template's tables, buckets and state machines in it. Moto keeps its backends in module globals,
so starting resets them: a second stack in the same process starts from an empty account.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import logging
import os
import threading
import urllib.parse
import urllib.request
import uuid
from typing import Any

import boto3
import botocore.handlers
from botocore.client import BaseClient
from botocore.config import Config
from moto.server import ThreadedMotoServer

from .template import ACCOUNT_ID, REGION, StackSpec, TableSpec

LOG = logging.getLogger(__name__)

# Services the stack uses; all are served by the one moto app, this list only drives the smoke check.
SERVICES = ("dynamodb", "s3", "stepfunctions", "ssm", "events")
STATES_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/queryall-local-states"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _snapshot_state_machine(self: Any, memo: dict[int, Any]) -> Any:
    """``__deepcopy__`` for moto's state machines that leaves out live executions and the backend.

    moto 5.2.1's parser backend snapshots the state machine with ``copy.deepcopy`` on every
    StartExecution. That walks ``executions`` (and, via ``backend``, every other state machine's),
    whose finished workers hold an RLock, so every StartExecution after the first one in the
    process fails with "cannot pickle '_thread.RLock' object" (getmoto/moto#10077). The snapshot
    only needs the definition: share the backend, start the clone with no executions.
    """
    backend = getattr(self, "backend", None)
    if backend is not None:
        memo.setdefault(id(backend), backend)
    executions = getattr(self, "executions", None)
    if isinstance(executions, list):
        memo.setdefault(id(executions), [])
    clone = object.__new__(type(self))
    memo[id(self)] = clone
    for key, value in self.__dict__.items():
        clone.__dict__[key] = copy.deepcopy(value, memo)
    return clone


# ItemBatcher of each Map state (by state name) in the definitions handed to moto, which cannot parse it.
_ITEM_BATCHERS: dict[str, dict[str, Any]] = {}


def without_item_batchers(definition: str) -> str:
    """The definition with every Map state's ItemBatcher taken out (and kept for :func:`_batched_items`).

    moto 5.2.1's ASL grammar has no ItemBatcher (CreateStateMachine fails on it); its distributed Map
    otherwise runs, so the local stack batches the items itself, as Step Functions would: consecutive
    groups of MaxItemsPerBatch(Path), each child getting ``{"Items": [...], "BatchInput": {...}}``.
    Applied where moto parses a definition, so the stored (and described) definition is the template's.
    """
    document = json.loads(definition)

    def visit(states: dict[str, Any]) -> None:
        for name, state in states.items():
            batcher = state.pop("ItemBatcher", None) if state.get("Type") == "Map" else None
            if batcher is not None:
                if "ItemSelector" in state or "Parameters" in state:
                    raise ValueError(f"Map state {name}: ItemSelector with ItemBatcher is not emulated locally")
                _ITEM_BATCHERS[name] = batcher
            for inner in [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]:
                if inner:
                    visit(inner.get("States", {}))

    visit(document.get("States", {}))
    return json.dumps(document)


def _resolve(template: Any, state_input: Any) -> Any:
    """A payload template (``"key.$": "$.path"``) against the Map state's input."""
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    if isinstance(template, dict):
        return {key.removesuffix(".$"): extract_json(value, state_input) if key.endswith(".$") else
                _resolve(value, state_input) for key, value in template.items()}
    if isinstance(template, list):
        return [_resolve(value, state_input) for value in template]
    return template


def _batched_items(items: list[Any], batcher: dict[str, Any], state_input: Any) -> list[dict[str, Any]]:
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    size = batcher.get("MaxItemsPerBatch") or extract_json(batcher["MaxItemsPerBatchPath"], state_input)
    batch_input = {"BatchInput": _resolve(batcher["BatchInput"], state_input)} if "BatchInput" in batcher else {}
    return [{"Items": items[start: start + size], **batch_input} for start in range(0, len(items), int(size))]


def _patch_moto_step_functions() -> None:
    """Work around moto 5.2.1 Step Functions parser quirks and gaps (idempotent)."""
    from moto.stepfunctions.models import StateMachineInstance
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    if "__deepcopy__" not in StateMachineInstance.__dict__:
        StateMachineInstance.__deepcopy__ = _snapshot_state_machine  # type: ignore[attr-defined]

    parse = AmazonStateLanguageParser.__dict__["parse"].__func__
    if not getattr(parse, "_queryall_batched", False):

        def parse_without_item_batchers(definition: str) -> Any:
            return parse(without_item_batchers(definition))

        parse_without_item_batchers._queryall_batched = True  # type: ignore[attr-defined]
        AmazonStateLanguageParser.parse = staticmethod(parse_without_item_batchers)  # type: ignore[method-assign]

    map_run = DistributedIterationComponent._map_run
    if not getattr(map_run, "_queryall_batched", False):

        @functools.wraps(map_run)
        def batched_map_run(self: Any, env: Any, eval_input: Any) -> None:
            batcher = _ITEM_BATCHERS.get(eval_input.state_name)
            if batcher is not None:  # the items read by the ItemReader are on top of the stack
                env.stack.append(_batched_items(env.stack.pop(), batcher, env.states.get_input()))
            map_run(self, env, eval_input)

        batched_map_run._queryall_batched = True  # type: ignore[attr-defined]
        DistributedIterationComponent._map_run = batched_map_run  # type: ignore[method-assign]

    original = StepFunctionsParserBackend.start_execution
    if getattr(original, "_queryall_named", False):
        return

    # AWS names an execution without a name with a UUID; the parser backend uses None, so the
    # second unnamed execution of a state machine fails with ExecutionAlreadyExists.
    @functools.wraps(original)
    def start_execution(self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    start_execution._queryall_named = True  # type: ignore[attr-defined]
    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


def _serialize_dynamodb_writes() -> None:
    """DynamoDB applies each item write atomically (its condition and an ADD included); moto 5.2.1's
    backend reads, checks and writes without a lock, so concurrent UpdateItem ADDs lost updates (about
    10% of 1,000 concurrent increments) and two racing conditional writes could both pass. One lock
    around moto's item writes gives back DynamoDB's guarantee (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        write = getattr(DynamoDBBackend, name)
        if getattr(write, "_queryall_serialized", False):
            continue

        def serialized(self: Any, *args: Any, _write: Any = write, **kwargs: Any) -> Any:
            with _DYNAMODB_WRITE_LOCK:
                return _write(self, *args, **kwargs)

        functools.update_wrapper(serialized, write)
        serialized._queryall_serialized = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, serialized)


_DYNAMODB_WRITE_LOCK = threading.RLock()


class _WsgiBody(io.BytesIO):
    """A response body as botocore reads it from urllib3: ``read()`` for streams, ``stream()`` for content."""

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self.getvalue()


class InProcessDispatch:
    """Answers this process's boto3 requests to the moto server by calling moto's WSGI app directly.

    The stack's handlers, and moto's own Step Functions interpreter, live in the moto server's process;
    a loopback HTTP round trip per S3/DynamoDB call (a socket, werkzeug's thread per request, HTTP
    parsing on both sides) was about a quarter of a job's CPU. A ``before-send`` hook hands the signed
    request to the same WSGI application instead: same backends, same responses, no socket. Requests
    from other processes (the CLI, ``aws --endpoint-url``, presigned URLs) still use the server.
    """

    def __init__(self, port: int) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.netlocs = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.app = DomainDispatcherApplication(create_backend_app)
        # The backend app of each (service, operation): moto finds it by matching the request against
        # every service's URL patterns, ~10% of a small call, and the answer never changes.
        self._apps: dict[str, Any] = {}

    def __call__(self, request: Any = None, event_name: str = "", **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from werkzeug.test import EnvironBuilder, run_wsgi_app

        url = urllib.parse.urlsplit(request.url)
        if url.netloc not in self.netlocs:
            return None
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        environ = EnvironBuilder(
            path=url.path, query_string=url.query, method=request.method,
            headers=[(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()],
            data=body or b"", base_url=f"{url.scheme}://{url.netloc}",
        ).get_environ()
        app = self._apps.get(event_name)
        if app is None:
            app = self._apps[event_name] = self.app.get_application(environ)
        try:
            chunks, status, headers = run_wsgi_app(app, environ, buffered=True)
        except Exception:  # what moto's server answers when a backend raises
            LOG.warning("moto failed on %s %s", request.method, request.url, exc_info=True)
            return AWSResponse(request.url, 500, {}, _WsgiBody(b"Internal Server Error"))
        data = b"".join(chunks)
        return AWSResponse(request.url, int(status.split(" ", 1)[0]), dict(headers.items()), _WsgiBody(data))


class MotoServices:
    """A moto server on a free loopback port, with Step Functions execution turned on.

    Only one may run per process: moto's backends, its config and MOTO_PORT are process-global,
    so a second server would share (and its start-up reset would wipe) the first one's state.
    """

    _running: MotoServices | None = None
    _running_lock = threading.Lock()

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> None:
        self._host = host
        self._quiet = quiet
        self._requested_port = port
        self._server: ThreadedMotoServer | None = None
        self._port: int | None = None
        self._saved_moto_port: str | None = None
        self._dispatch: InProcessDispatch | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("moto services are not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("moto services already started")
        with MotoServices._running_lock:
            other = MotoServices._running
            if other is not None:
                raise RuntimeError(
                    f"moto services are already running in this process at {other.url}; "
                    "moto's state is process-global, so stop them before starting another"
                )
            MotoServices._running = self
        try:
            self._start()
        except BaseException:
            with MotoServices._running_lock:
                MotoServices._running = None
            raise

    def _start(self) -> None:
        _patch_moto_step_functions()
        _serialize_dynamodb_writes()
        # werkzeug logs every request at INFO to stderr when logging is unconfigured; the local
        # stack's own log is the useful one.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self._quiet:
            # The ASL interpreter logs every Fail state and caught error at ERROR with a repr of
            # the state; failed jobs are a normal outcome here, and the execution history has it.
            logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        # Port 0: the OS picks a free port at bind time, so there is no probe-then-bind race.
        # (ThreadedMotoServer.start() would wait forever if its bind failed.)
        server = ThreadedMotoServer(ip_address=self._host, port=self._requested_port, verbose=False)
        server.start()
        self._server = server
        self._port = server.get_host_and_port()[1]
        # moto's Step Functions interpreter builds its Lambda/AWS clients against
        # http://localhost:$MOTO_PORT, so this must name our port while we run.
        self._saved_moto_port = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = str(self._port)
        try:
            self._post("/moto-api/reset", b"")
            self._post("/moto-api/config", _sfn_config(True))
        except Exception:
            self._shutdown()
            raise
        # Sessions created from now on (the runtime's default session, moto's interpreter clients) get it.
        self._dispatch = InProcessDispatch(self._port)
        botocore.handlers.BUILTIN_HANDLERS.append(("before-send", self._dispatch))
        LOG.debug("moto listening on %s", self.url)

    def stop(self) -> None:
        try:
            self._shutdown()
        finally:
            with MotoServices._running_lock:
                if MotoServices._running is self:
                    MotoServices._running = None

    def _shutdown(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        dispatch, self._dispatch = self._dispatch, None
        if ("before-send", dispatch) in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.remove(("before-send", dispatch))
        # Turn execution back off: moto's config is process-global and outlives this server.
        with contextlib.suppress(OSError):
            self._post("/moto-api/config", _sfn_config(False))
        server.stop()
        if self._saved_moto_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._saved_moto_port
        self._port = None

    def __enter__(self) -> MotoServices:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> BaseClient:
        """A boto3 client for ``service`` pointed at this server, independent of os.environ."""
        # Own session: the default one carries the Lambda hook and may be replaced by handlers.
        session = boto3.session.Session(region_name=REGION, **FAKE_CREDENTIALS)
        return session.client(
            service, endpoint_url=self.url, config=Config(retries={"max_attempts": 2, "mode": "standard"})
        )

    def check(self) -> None:
        """One cheap call per service, so a broken moto install fails at start, not mid-request."""
        self.client("dynamodb").list_tables()
        self.client("s3").list_buckets()
        self.client("stepfunctions").list_state_machines()
        self.client("ssm").describe_parameters()
        self.client("events").list_event_buses()

    def _post(self, path: str, body: bytes) -> Any:
        url = f"{self.url}{path}"  # always http://127.0.0.1:<port>, built here
        request = urllib.request.Request(  # noqa: S310
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.read()


def _sfn_config(execute: bool) -> bytes:
    return json.dumps({"stepfunctions": {"execute_state_machine": execute}}).encode()


def create_table(services: MotoServices, table: TableSpec) -> None:
    dynamodb = services.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": table.name,
        "KeySchema": table.key_schema,
        "AttributeDefinitions": table.attribute_definitions,
        "BillingMode": table.billing_mode,
    }
    if table.billing_mode == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = table.provisioned_throughput or {
            "ReadCapacityUnits": 5,
            "WriteCapacityUnits": 5,
        }
    if table.global_secondary_indexes:
        kwargs["GlobalSecondaryIndexes"] = table.global_secondary_indexes
    if table.local_secondary_indexes:
        kwargs["LocalSecondaryIndexes"] = table.local_secondary_indexes
    if table.stream_view_type:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream_view_type}
    dynamodb.create_table(**kwargs)
    if table.ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={"AttributeName": table.ttl_attribute, "Enabled": True},
        )


def provision(services: MotoServices, spec: StackSpec) -> None:
    """Create every table, bucket, state machine and schedule rule the template declares."""
    for table in spec.tables.values():
        create_table(services, table)
    s3 = services.client("s3")
    for bucket in spec.buckets.values():
        s3.create_bucket(Bucket=bucket.name)  # us-east-1 takes no LocationConstraint
    sfn = services.client("stepfunctions")
    for machine in spec.state_machines.values():
        arn = sfn.create_state_machine(
            name=machine.name, definition=machine.definition, roleArn=STATES_ROLE_ARN, type=machine.type
        )["stateMachineArn"]
        # Handlers get the ARN from the template (STATE_MACHINE_ARN); it must be the one moto made.
        if arn != machine.arn:
            raise RuntimeError(f"moto created {machine.logical_id} as {arn}, the template resolves it to {machine.arn}")
    events = services.client("events")
    for schedule in spec.schedules:
        # The rule exists as deployed; LocalStack fires its function (moto never runs schedules). No
        # target is registered: moto 5.2.1's PutEvents fails on a schedule rule that has one.
        events.put_rule(Name=schedule.name, ScheduleExpression=schedule.expression, State="ENABLED",
                        Description=f"target: {schedule.function} (fired by the local stack)")


def put_secure_parameter(services: MotoServices, name: str, value: str) -> None:
    services.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
