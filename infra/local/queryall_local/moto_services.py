"""In-process moto server standing in for DynamoDB, S3, Step Functions, SSM and EventBridge.

One ``ThreadedMotoServer`` on 127.0.0.1 serves every AWS service; :func:`provision` creates the
template's tables, buckets and state machines in it. Moto keeps its backends in module globals,
so starting resets them: a second stack in the same process starts from an empty account.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import threading
import urllib.request
import uuid
from typing import Any

import boto3
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


def _patch_moto_step_functions() -> None:
    """Work around two moto 5.2.1 Step Functions parser quirks (idempotent)."""
    from moto.stepfunctions.models import StateMachineInstance
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    if "__deepcopy__" not in StateMachineInstance.__dict__:
        StateMachineInstance.__deepcopy__ = _snapshot_state_machine  # type: ignore[attr-defined]

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
    """Create every table, bucket and state machine the template declares."""
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


def put_secure_parameter(services: MotoServices, name: str, value: str) -> None:
    services.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
