"""The whole local stack: moto services + in-process Lambda runtime + local HTTP API gateway."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .background import BackgroundLoop

if TYPE_CHECKING:  # imported when a stack starts: `queryall local` pays only for what a command uses
    from botocore.client import BaseClient

    from .gateway import LocalGateway
    from .jwt_auth import BearerTokens, Rejection
    from .lambda_runtime import LambdaRuntime
    from .moto_services import MotoServices
    from .queue_pollers import QueuePollers
    from .template import StackSpec

LOG = logging.getLogger(__name__)

DEFAULT_API_KEY = "local-dev-key"
DEFAULT_ADMIN_API_KEY = "local-admin-key"
TENANT_DATABASE_PATTERN = "warehouse_{bucket}.duckdb"
# Template parameters the local stack fills in itself (when the template declares them).
TENANT_DATABASES_PARAMETER = "TenantDatabases"
TENANT_DATABASES_BUCKET_PARAMETER = "TenantDatabasesBucket"
API_KEYS_PARAMETER = "ApiKeysParameterName"
ADMIN_API_KEYS_PARAMETER = "AdminApiKeysParameterName"
JOBS_TABLE = "JobsTable"
RESULTS_BUCKET = "ResultsBucket"
MAP_CONCURRENCY_PARAMETERS = ("MapMaxConcurrency", "DistributedMapMaxConcurrency")


def find_repo_root(override: Path | str | None = None) -> Path:
    """The directory holding template.yaml: ``override``, else three parents up from this package."""
    # infra/local/queryall_local/stack.py: parents[0] is the package, parents[3] the repo root
    root = Path(override).resolve() if override is not None else Path(__file__).resolve().parents[3]
    if not (root / "template.yaml").is_file():
        raise FileNotFoundError(f"no template.yaml in {root}")
    return root


def tenant_databases_value(tenants_dir: Path | str) -> str:
    """The TenantDatabases parameter for a folder of ``warehouse_<bucket>.duckdb`` files."""
    return str(Path(tenants_dir).resolve() / TENANT_DATABASE_PATTERN)


_Part = TypeVar("_Part")


def _started(part: _Part | None, message: str = "local stack is not started") -> _Part:
    """A part only a started stack has (RuntimeError with ``message`` when it has none)."""
    if part is None:
        raise RuntimeError(message)
    return part


class LocalStack:
    """Everything the deployed stack has, running in this process on loopback ports.

    ``start()`` reads the template, starts moto, creates the table/bucket/state machine/API-key
    parameter, installs the in-process Lambda runtime (environment, Invoke hook) and, unless
    ``with_gateway`` is False, serves the HTTP API on ``host:port``. One ``contextlib.ExitStack``
    holds every process-wide change it makes; ``stop()`` (or a failing ``start()``) undoes them all
    in reverse, so a later stack in the same process starts clean.
    """

    _running: LocalStack | None = None  # the stack started in this process, if any

    def __init__(
        self,
        template_path: Path | str | None = None,
        tenants_dir: Path | str | None = None,
        api_key: str | Sequence[str] = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        parameter_overrides: Mapping[str, Any] | None = None,
        *,
        repo_root: Path | str | None = None,
        with_gateway: bool = True,
        enable_metrics: bool = False,
        lambda_concurrency: int | None = None,
        admin_api_key: str = DEFAULT_ADMIN_API_KEY,
        secure_parameters: Mapping[str, str] | None = None,
        bearer_tokens: BearerTokens | None = None,
        event_listeners: Sequence[Callable[[dict[str, Any]], None]] = (),
        tenants_backend: Literal["folder", "s3"] = "folder",
        s3_latency_ms: float = 0.0,
    ) -> None:
        if template_path is None:
            template_path = find_repo_root(repo_root) / "template.yaml"
        self.template_path = Path(template_path).resolve()
        self.tenants_dir = Path(tenants_dir).resolve() if tenants_dir is not None else None
        self.api_keys = [api_key] if isinstance(api_key, str) else list(api_key)
        self.host = host
        self.port = port
        self.parameter_overrides = dict(parameter_overrides or {})
        self.with_gateway = with_gateway
        self.enable_metrics = enable_metrics
        self.lambda_concurrency = lambda_concurrency  # None: one workflow Lambda per CPU core at a time
        self.admin_api_key = admin_api_key  # also an accepted API key, as the deployed stack requires
        # More SecureString parameters to create (e.g. a SQL generator's API key), by name.
        self.secure_parameters = dict(secure_parameters or {})
        # The JWT authorizer (--jwt-issuer/--jwt-audience/--jwks-url); None accepts API keys only.
        self.bearer_tokens = bearer_tokens
        # Called with every event the stack puts on its EventBridge bus (event_tap), e.g. to log or forward it.
        self.event_listeners = list(event_listeners)
        # "s3": the tenant folder's databases are uploaded to the local S3 at start and read from there.
        self.tenants_backend = tenants_backend
        self.s3_latency_ms = s3_latency_ms  # added before every S3 request moto serves
        self._spec: StackSpec | None = None
        self._moto: MotoServices | None = None
        self._runtime: LambdaRuntime | None = None
        self._gateway: LocalGateway | None = None
        self._queue_pollers: QueuePollers | None = None
        self._patches = contextlib.ExitStack()

    # ----------------------------------------------------------------------------- lifecycle

    def _overrides(self) -> dict[str, Any]:
        from .template import read_template

        declared = read_template(self.template_path).get("Parameters") or {}
        overrides: dict[str, Any] = {}
        if self.tenants_dir is not None and TENANT_DATABASES_PARAMETER in declared:
            overrides[TENANT_DATABASES_PARAMETER] = tenant_databases_value(self.tenants_dir)
            if self.tenants_backend == "s3":
                from .s3_tenants import TENANTS_S3_BUCKET, s3_tenant_databases_value

                overrides[TENANT_DATABASES_PARAMETER] = s3_tenant_databases_value()
                if TENANT_DATABASES_BUCKET_PARAMETER in declared:
                    overrides[TENANT_DATABASES_BUCKET_PARAMETER] = TENANTS_S3_BUCKET
        # Plans spread batches over the Map's concurrency; here that is what this machine runs at once.
        for name in MAP_CONCURRENCY_PARAMETERS:
            if name in declared:
                overrides[name] = str(self.lambda_concurrency or os.cpu_count() or 1)
        overrides.update(self.parameter_overrides)  # an explicit override wins
        return overrides

    def start(self) -> LocalStack:
        if self._moto is not None:
            raise RuntimeError("local stack already started")
        other = LocalStack._running
        if other is not None:
            # moto state, os.environ and boto3's default session are per process.
            raise RuntimeError(
                f"another local stack is running in this process ({other.moto_url}); stop it first "
                "or use LocalStack.active()"
            )
        from .lambda_runtime import LambdaRuntime
        from .moto_services import MotoServices, provision, put_secure_parameter
        from .template import load_template

        spec = load_template(self.template_path, self._overrides())
        self._spec = spec
        # Every process-wide change (moto server, MOTO_PORT, botocore hooks, os.environ, sys.path,
        # boto3's default session, Powertools' log keys, moto patches) is entered here, and undone in
        # reverse by stop() or, if a step fails, right here.
        with contextlib.ExitStack() as patches:
            moto = MotoServices(s3_latency_ms=self.s3_latency_ms)
            moto.start(patches)
            patches.callback(setattr, self, "_moto", None)
            self._moto = moto
            runtime = LambdaRuntime(spec, endpoint_url=moto.url, enable_metrics=self.enable_metrics,
                                    max_concurrency=self.lambda_concurrency)
            runtime.install(patches)
            patches.callback(setattr, self, "_runtime", None)
            self._runtime = runtime
            if spec.event_rules:
                # moto runs no rule targets: the stack delivers executions' status changes to the rules.
                from .event_rules import RuleTargets
                from .moto_compat import execution_listener

                patches.enter_context(execution_listener(RuleTargets(spec, runtime).execution_status_changed))
            # The template's resources and the API keys appear on each service's first request.
            provision(moto, spec)
            parameter_name = spec.parameters.get(API_KEYS_PARAMETER)
            admin_parameter_name = spec.parameters.get(ADMIN_API_KEYS_PARAMETER)
            if parameter_name:
                keys = self.api_keys + ([self.admin_api_key] if admin_parameter_name else [])
                moto.on_first_use("ssm", lambda moto: put_secure_parameter(moto, parameter_name, ",".join(keys)))
            if admin_parameter_name:
                moto.on_first_use("ssm", lambda moto: put_secure_parameter(moto, admin_parameter_name,
                                                                           self.admin_api_key))
            for name, value in self.secure_parameters.items():
                moto.on_first_use("ssm", lambda moto, name=name, value=value: put_secure_parameter(moto, name, value))
            if spec.queue_sources:
                from .queue_pollers import QueuePollers

                pollers = QueuePollers(moto, runtime, spec)
                patches.callback(pollers.stop)
                patches.callback(setattr, self, "_queue_pollers", None)
                self._queue_pollers = pollers
                moto.on_first_use("sqs", lambda moto: pollers.start())  # SQS queues are made first
            if self.tenants_backend == "s3" and self.tenants_dir is not None:
                from .s3_tenants import upload_tenants

                latency, moto.s3_latency_ms = moto.s3_latency_ms, 0.0  # the set-up is not what is measured
                upload_tenants(moto, self.tenants_dir)
                moto.s3_latency_ms = latency
            patches.callback(self._drain_executions)  # before the runtime and moto go
            if self.with_gateway:
                from .gateway import LocalGateway

                gateway = LocalGateway(spec.routes, runtime, self.host, self.port, api_id=spec.api_id,
                                       authorizer=self._authorize)
                gateway.start()
                patches.callback(gateway.stop)
                patches.callback(setattr, self, "_gateway", None)
                self._gateway = gateway
                scheduler = _Scheduler(spec, runtime)
                scheduler.start()
                patches.callback(scheduler.stop)
                self._start_events(spec, moto, runtime, patches)
            self._patches = patches.pop_all()
        LocalStack._running = self
        LOG.info("local stack started: gateway %s, moto %s", self._gateway and self._gateway.url, self._moto.url)
        return self

    def _start_events(self, spec: StackSpec, moto: MotoServices, runtime: LambdaRuntime,
                      patches: contextlib.ExitStack) -> None:
        """The job state-change events: the table stream's consumer, the bus, and the event listeners."""
        from .event_tap import EVENT_BUS_PARAMETER, EventTap, ensure_event_bus
        from .table_streams import start_table_streams

        bus = spec.parameters.get(EVENT_BUS_PARAMETER)
        if bus:
            moto.on_first_use("events", lambda moto: ensure_event_bus(moto, bus))
            if self.event_listeners:
                EventTap(moto, bus, self.event_listeners).start(patches)
        start_table_streams(spec, moto, runtime, patches)

    def stop(self) -> None:
        """Stop scheduler, gateway, runtime and moto and undo every change, in reverse; safe to call twice."""
        if LocalStack._running is self:
            LocalStack._running = None
        patches, self._patches = self._patches, contextlib.ExitStack()
        patches.close()

    def _authorize(self, event: dict[str, Any]) -> Rejection | None:
        return self.bearer_tokens.authorize(event) if self.bearer_tokens is not None else None

    def _drain_executions(self, timeout: float = 30.0) -> None:
        """Let running executions finish before the runtime goes: a Lambda thread still inside DuckDB
        when the interpreter exits aborts the whole process."""
        if self._moto is None or not self._moto.used("stepfunctions"):
            return  # nothing ever ran a state machine
        deadline = time.monotonic() + timeout
        try:
            sfn = self.client("stepfunctions")
            for machine in sfn.list_state_machines()["stateMachines"]:
                arn = machine["stateMachineArn"]
                while time.monotonic() < deadline and sfn.list_executions(
                    stateMachineArn=arn, statusFilter="RUNNING"
                )["executions"]:
                    time.sleep(0.05)
        except Exception as exc:  # stopping must go on whatever the services say
            LOG.warning("could not wait for running executions: %s", exc)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def active(cls) -> LocalStack | None:
        """The stack running in this process, if any (tests use it to share one stack)."""
        return cls._running

    # ----------------------------------------------------------------------------- accessors

    @property
    def running(self) -> bool:
        return self._moto is not None

    @property
    def spec(self) -> StackSpec:
        return _started(self._spec)

    @property
    def url(self) -> str:
        """Base URL of the local HTTP API (no trailing slash)."""
        return _started(self._gateway, "local stack has no running gateway").url

    @property
    def moto_url(self) -> str:
        return self.moto.url

    @property
    def runtime(self) -> LambdaRuntime:
        return _started(self._runtime)

    @property
    def moto(self) -> MotoServices:
        return _started(self._moto)

    @property
    def queue_pollers(self) -> QueuePollers:
        """The template's SQS event sources, polled into their functions once SQS is first used."""
        return _started(self._queue_pollers, "local stack is not started, or its template has no SQS event source")

    def client(self, service: str) -> BaseClient:
        """A boto3 client against the stack's moto server."""
        return self.moto.client(service)

    @property
    def dynamodb_table_name(self) -> str:
        """The jobs table (the template's only table, or the one called JobsTable)."""
        if JOBS_TABLE in self.spec.tables:
            return self.spec.tables[JOBS_TABLE].name
        return _only(self.spec.tables, "DynamoDB table").name

    @property
    def results_bucket_name(self) -> str:
        """The results bucket (the template's only bucket, or the one called ResultsBucket)."""
        if RESULTS_BUCKET in self.spec.buckets:
            return self.spec.buckets[RESULTS_BUCKET].name
        return _only(self.spec.buckets, "S3 bucket").name

    @property
    def state_machine_arn(self) -> str:
        return _only(self.spec.state_machines, "state machine").arn

    @property
    def api_keys_parameter_name(self) -> str | None:
        return self.spec.parameters.get(API_KEYS_PARAMETER)

    @property
    def tenant_databases(self) -> str | None:
        return self.spec.parameters.get(TENANT_DATABASES_PARAMETER)


def _only(items: Mapping[str, Any], what: str) -> Any:
    if len(items) != 1:
        raise LookupError(
            f"the template declares {len(items)} {what}s ({', '.join(items) or 'none'}); "
            "use stack.spec to pick one by logical id"
        )
    return next(iter(items.values()))


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class _Scheduler(BackgroundLoop):
    """Fires the template's Schedule events, which moto's EventBridge records but never runs: each
    target once when the stack starts (so a fresh stack has, e.g., its catalog) and then at its
    rate(...); cron(...) rules fire only at start."""

    def __init__(self, spec: StackSpec, runtime: LambdaRuntime) -> None:
        self._spec = spec
        self._runtime = runtime
        super().__init__("local-schedules", join_timeout=5)

    def start(self) -> None:
        if self._spec.schedules:
            self._thread.start()

    def _fire(self, name: str, function: str) -> None:
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": self._spec.account_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "region": self._spec.region, "resources": [f"arn:aws:events:{self._spec.region}:"
                                                            f"{self._spec.account_id}:rule/{name}"], "detail": {}}
        self._runtime.invoke_async(function, json.dumps(event).encode())

    def _run(self) -> None:
        periods = {s.name: _rate_seconds(s.expression) for s in self._spec.schedules}
        now = time.monotonic()
        due = {name: now + period for name, period in periods.items() if period is not None}
        for schedule in self._spec.schedules:
            self._fire(schedule.name, schedule.function)
        functions = {s.name: s.function for s in self._spec.schedules}
        while due and not self._stop.wait(max(0.0, min(due.values()) - time.monotonic())):
            for name, at in list(due.items()):
                if time.monotonic() >= at:
                    self._fire(name, functions[name])
                    due[name] = at + (periods[name] or 0)


def _rate_seconds(expression: str) -> int | None:
    match = _RATE.match(expression)
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")] if match else None
