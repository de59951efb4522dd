"""In-process moto server standing in for DynamoDB, S3, Step Functions, SSM and EventBridge.

One moto WSGI application on 127.0.0.1 serves every AWS service. Nothing of a service is set up
before it is used: the first request to a service (from this process or another) applies that
service's moto patches (:mod:`.moto_compat`) and runs what the stack registered for it (creating the
template's tables, buckets, state machines), so a stack that is only asked for DynamoDB never loads
moto's Step Functions interpreter. Moto keeps its backends in module globals, so starting resets
them: a second stack in the same process starts from an empty account.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import botocore.handlers
from botocore.client import BaseClient

from . import moto_compat
from .own_patches import OwnPatches
from .template import ACCOUNT_ID, REGION, StackSpec, TableSpec

LOG = logging.getLogger(__name__)

STATES_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/queryall-local-states"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextlib.contextmanager
def builtin_handler(event: str, handler: Callable[..., Any]) -> Iterator[None]:
    """``(event, handler)`` in botocore's BUILTIN_HANDLERS, which every session created meanwhile copies."""
    entry = (event, handler)
    botocore.handlers.BUILTIN_HANDLERS.append(entry)
    try:
        yield
    finally:
        while entry in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.remove(entry)


@contextlib.contextmanager
def logger_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


_COUNTED = "queryall.request_counted"  # set in a request's environ once `on_request` has run for it


def _dispatcher(before_backend: Callable[[str], None], on_request: Callable[[str], None],
                plain_reads: Callable[[], bool] = lambda: True) -> Any:
    """moto's WSGI application, calling ``before_backend(service)`` before it builds a service's backend
    app and ``on_request(service)`` before it handles each request; while ``plain_reads()``, plain S3
    object reads are answered from moto's backend directly (`s3_reads`)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.http import HTTP_STATUS_CODES

    from . import s3_reads

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(self._create_app)
            self.service_of: dict[int, str] = {}  # id(backend app) -> moto's service name
            # S3 requests over HTTP (DuckDB's httpfs in the query workers, 11 a tenant) made moto infer
            # the service from the signature, then list its own modules on disk (an isdir each) and try
            # every service's URL patterns: about a quarter of the CPU such a request cost. For a
            # signed S3 request the answer depends on its region alone.
            self._s3_apps: dict[str, Any] = {}

        def _create_app(self, service: Any) -> Any:
            before_backend(str(service))
            app = create_backend_app(service)
            self.service_of[id(app)] = str(service)
            return app

        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            signed = _signed_s3(environ)
            if signed is None or not plain_reads() or not s3_reads.is_plain_read(environ, signed[0]):
                return super().__call__(environ, start_response)
            on_request("s3")  # first: it sets moto's S3 up on first use, and adds the latency
            environ[_COUNTED] = True
            answer = s3_reads.answer(environ, signed[0])
            if answer is None:
                return super().__call__(environ, start_response)
            status, headers, body = answer
            start_response(f"{status} {HTTP_STATUS_CODES[status]}", headers)
            return [body]

        def get_application(self, environ: dict[str, Any]) -> Any:
            signed = _signed_s3(environ)
            region = signed[1] if signed else None
            app = self._s3_apps.get(region) if region else None
            if app is None:
                app = super().get_application(environ)
                if region:
                    self._s3_apps[region] = app
            if not environ.get(_COUNTED):
                on_request(self.service_of.get(id(app), ""))
            return app

    dispatcher = Dispatcher()
    dispatcher.on_request = on_request
    return dispatcher


def _signed_s3(environ: dict[str, Any]) -> tuple[str, str] | None:
    """The access key and region of a SigV4-signed S3 object or bucket request (not S3 Control, not
    moto's own API), else None."""
    path = environ.get("PATH_INFO", "")
    if not isinstance(path, str) or path.startswith(("/moto-api", "/latest/", "/v20180820/", "/favicon.ico")):
        return None
    if "s3-control" in environ.get("HTTP_HOST", ""):
        return None
    scope = environ.get("HTTP_AUTHORIZATION", "").split(",")[0].split()
    parts = scope[1].split("/") if len(scope) == 2 and scope[0] == "AWS4-HMAC-SHA256" else []
    if len(parts) != 5 or parts[3] != "s3" or not parts[0].startswith("Credential="):
        return None
    return parts[0].removeprefix("Credential="), parts[2]


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

    def __init__(self, port: int, app: Any) -> None:
        self.netlocs = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.app = app  # the server's own application: same backends, same first-use hook
        self.pid = os.getpid()
        # The backend app of each (service, operation): moto finds it by matching the request against
        # every service's URL patterns, ~10% of a small call, and the answer never changes.
        self._apps: dict[str, Any] = {}

    def __call__(self, request: Any = None, event_name: str = "", **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from werkzeug.test import EnvironBuilder, run_wsgi_app

        url = urllib.parse.urlsplit(request.url)
        if url.netloc not in self.netlocs or os.getpid() != self.pid:
            # A forked child (a query worker downloading its tenant) has a copy of moto's state, not
            # moto: its requests go to the server.
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
        else:
            self.app.on_request(self.app.service_of.get(id(app), ""))
        try:
            chunks, status, headers = run_wsgi_app(app, environ, buffered=True)
        except Exception:  # what moto's server answers when a backend raises
            LOG.warning("moto failed on %s %s", request.method, request.url, exc_info=True)
            return AWSResponse(request.url, 500, {}, _WsgiBody(b"Internal Server Error"))
        data = b"".join(chunks)
        return AWSResponse(request.url, int(status.split(" ", 1)[0]), dict(headers.items()), _WsgiBody(data))


class MotoServices(OwnPatches):
    """A moto server on a free loopback port, with Step Functions execution turned on.

    Only one may run per process: moto's backends, its config and MOTO_PORT are process-global,
    so a second server would share (and its start-up reset would wipe) the first one's state.
    Every process-wide change it makes is entered into the ``patches`` ExitStack given to
    :meth:`start` (the local stack's), which undoes them in reverse.
    """

    _running: MotoServices | None = None
    _running_lock = threading.Lock()

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True,
                 s3_latency_ms: float = 0.0) -> None:
        self._host = host
        # Added before every S3 request served (over HTTP and in-process alike), so that network-bound
        # behaviour (tenant databases in S3) shows on one machine; it may be changed while serving.
        self.s3_latency_ms = s3_latency_ms
        # Requests served, by moto's service name (counting S3 requests per tenant, for instance).
        self.request_counts: collections.Counter[str] = collections.Counter()
        # Plain object reads over HTTP (DuckDB's, of tenant databases) answered from moto's S3 backend
        # without moto's dispatch (`s3_reads`); off, moto answers them as any request.
        self.plain_s3_reads = True
        self._counts_lock = threading.Lock()
        self._quiet = quiet
        self._requested_port = port
        self._port: int | None = None
        self._patches: contextlib.ExitStack | None = None
        self._dispatch: InProcessDispatch | None = None
        # What to do on the first request to a service (its moto patches, the stack's resources).
        self._first_use: dict[str, list[Callable[[MotoServices], None]]] = {}
        self._used: set[str] = set()
        self._starting: set[str] = set()
        self._first_use_lock = threading.RLock()
        # One session and one client per service, made on first use: each new session decodes
        # botocore's service models again (~0.2 s a service).
        self._session: Any = None
        self._clients: dict[str, BaseClient] = {}
        self._clients_lock = threading.Lock()

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
        return self._port is not None

    def on_first_use(self, service: str, action: Callable[[MotoServices], None]) -> None:
        """Run ``action`` when ``service`` gets its first request (at once if it already had one)."""
        with self._first_use_lock:
            if service not in self._used:
                self._first_use.setdefault(service, []).append(action)
                return
        action(self)

    def used(self, service: str) -> bool:
        return service in self._used

    def _on_request(self, service: str) -> None:
        with self._counts_lock:
            self.request_counts[service] += 1
        if service == "s3" and self.s3_latency_ms > 0:
            time.sleep(self.s3_latency_ms / 1000)  # each request its own thread: requests wait side by side
        if service in self._used:
            return
        with self._first_use_lock:  # other threads wait until the service is set up
            if service in self._used or service in self._starting:
                return  # set up already, or this thread is setting it up (its own requests)
            self._starting.add(service)
            try:
                for action in self._first_use.pop(service, []):
                    action(self)
                self._used.add(service)
            finally:
                self._starting.discard(service)

    def _apply_moto_patches(self, service: str) -> None:
        # Under moto's dispatcher lock, once per service: before moto imports and builds its backend.
        if self._patches is not None:
            moto_compat.apply(service, self._patches)

    def start(self, patches: contextlib.ExitStack | None = None) -> None:
        """Serve; ``patches`` (default: one of its own, closed by :meth:`stop`) undoes it all."""
        if self._port is not None:
            raise RuntimeError("moto services already started")
        patches = self._patches_or_own(patches)
        with contextlib.ExitStack() as starting:
            starting.enter_context(self._claim())
            self._start(starting)
            self._patches = patches
            patches.push(starting.pop_all())

    @contextlib.contextmanager
    def _claim(self) -> Iterator[None]:
        with MotoServices._running_lock:
            other = MotoServices._running
            if other is not None:
                raise RuntimeError(
                    f"moto services are already running in this process at {other.url}; "
                    "moto's state is process-global, so stop them before starting another"
                )
            MotoServices._running = self
        try:
            yield
        finally:
            with MotoServices._running_lock:
                if MotoServices._running is self:
                    MotoServices._running = None

    def _start(self, patches: contextlib.ExitStack) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        # werkzeug logs every request at INFO to stderr when logging is unconfigured; the local
        # stack's own log is the useful one.
        patches.enter_context(logger_level("werkzeug", logging.WARNING))
        if self._quiet:
            # The ASL interpreter logs every Fail state and caught error at ERROR with a repr of
            # the state; failed jobs are a normal outcome here, and the execution history has it.
            patches.enter_context(logger_level("moto.stepfunctions.parser", logging.CRITICAL))
        app = _dispatcher(self._apply_moto_patches, self._on_request, lambda: self.plain_s3_reads)
        # Port 0: the OS picks a free port at bind time, so there is no probe-then-bind race.
        class RequestHandler(MotoRequestHandler):
            # A response is its headers, then its body, in two writes: with Nagle's algorithm the
            # body's last segment may wait for the client's ACK of the headers. A tenant's download
            # (2 requests, 0 ms latency) took 26 ms with it, 18 ms without.
            disable_nagle_algorithm = True

        server = make_server(self._host, self._requested_port, app, threaded=True, request_handler=RequestHandler)
        # serve_forever notices shutdown() only between polls: 0.5 s by default, all of it added to a stop.
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto-server",
                                  daemon=True)
        thread.start()

        def shut_down() -> None:
            server.shutdown()
            server.server_close()
            thread.join()
            self._port = None

        patches.callback(shut_down)
        self._port = server.server_address[1]
        # moto's Step Functions interpreter builds its Lambda/AWS clients against
        # http://localhost:$MOTO_PORT, so this must name our port while we run.
        patches.enter_context(mock.patch.dict("os.environ", {"MOTO_PORT": str(self._port)}))
        self._post("/moto-api/reset", b"")
        self._post("/moto-api/config", _sfn_config(True))
        # Turn execution back off: moto's config is process-global and outlives this server.
        patches.callback(self._stop_executing)
        # Sessions created from now on (the runtime's default session, moto's interpreter clients) get it.
        self._dispatch = InProcessDispatch(self._port, app)
        patches.enter_context(builtin_handler("before-send", self._dispatch))
        patches.callback(setattr, self, "_dispatch", None)
        patches.callback(self._forget_clients)
        patches.callback(self._forget_services)
        LOG.debug("moto listening on %s", self.url)

    def _stop_executing(self) -> None:
        with contextlib.suppress(OSError):
            self._post("/moto-api/config", _sfn_config(False))

    def _forget_clients(self) -> None:
        with self._clients_lock:
            self._session = None
            self._clients.clear()

    def _forget_services(self) -> None:
        with self._first_use_lock:
            self._used.clear()
            self._first_use.clear()
        self._patches = None

    def stop(self) -> None:
        """Undo :meth:`start` when it made its own ExitStack (a stack's is closed by the stack)."""
        self._close_own_patches()

    _begin, _end = start, stop  # what `with` does

    def client(self, service: str) -> BaseClient:
        """The boto3 client for ``service`` pointed at this server, independent of os.environ."""
        with self._clients_lock:
            client = self._clients.get(service)
            if client is None:
                from botocore.config import Config

                from .sessions import SerializedSession

                # Own session: the default one carries the Lambda hook and may be replaced by handlers.
                if self._session is None:
                    self._session = SerializedSession(region_name=REGION, **FAKE_CREDENTIALS)
                client = self._clients[service] = self._session.client(
                    service, endpoint_url=self.url, config=Config(retries={"max_attempts": 2, "mode": "standard"})
                )
            return client

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
    """Create the template's tables, buckets, state machines and schedule rules, each service's on its
    first request (a state machine loads moto's whole ASL interpreter: only when Step Functions is used)."""

    def tables(services: MotoServices) -> None:
        for table in spec.tables.values():
            create_table(services, table)

    def buckets(services: MotoServices) -> None:
        for bucket in spec.buckets.values():
            services.client("s3").create_bucket(Bucket=bucket.name)  # us-east-1 takes no LocationConstraint

    def state_machines(services: MotoServices) -> None:
        for machine in spec.state_machines.values():
            arn = services.client("stepfunctions").create_state_machine(
                name=machine.name, definition=machine.definition, roleArn=STATES_ROLE_ARN, type=machine.type
            )["stateMachineArn"]
            # Handlers get the ARN from the template (STATE_MACHINE_ARN); it must be the one moto made.
            if arn != machine.arn:
                raise RuntimeError(
                    f"moto created {machine.logical_id} as {arn}, the template resolves it to {machine.arn}")

    def rules(services: MotoServices) -> None:
        for schedule in spec.schedules:
            # The rule exists as deployed; LocalStack fires its function (moto never runs schedules). No
            # target is registered: moto 5.2.1's PutEvents fails on a schedule rule that has one.
            services.client("events").put_rule(
                Name=schedule.name, ScheduleExpression=schedule.expression, State="ENABLED",
                Description=f"target: {schedule.function} (fired by the local stack)")
        events = services.client("events")
        for rule in spec.event_rules:
            buses = {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}
            if rule.bus not in buses:
                events.create_event_bus(Name=rule.bus)
            events.put_rule(Name=rule.name, EventBusName=rule.bus, EventPattern=json.dumps(rule.pattern),
                            State="ENABLED", Description=f"target: {rule.function}")
            # PutEvents matches reach the Lambda target through the local runtime (moto_compat,
            # events-lambda-targets); Step Functions' status changes are delivered by event_rules.RuleTargets.
            events.put_targets(Rule=rule.name, EventBusName=rule.bus,
                               Targets=[{"Id": rule.function, "Arn": spec.functions[rule.function].arn}])

    def queues(services: MotoServices) -> None:
        sqs = services.client("sqs")
        # A queue's dead-letter queue first: its redrive policy names an existing queue.
        for queue in sorted(spec.queues.values(), key=lambda queue: queue.dead_letter_queue is not None):
            attributes = {}
            if queue.visibility_timeout is not None:
                attributes["VisibilityTimeout"] = str(queue.visibility_timeout)
            if queue.dead_letter_queue:
                attributes["RedrivePolicy"] = json.dumps({
                    "deadLetterTargetArn": spec.queues_by_name()[queue.dead_letter_queue].arn,
                    "maxReceiveCount": queue.max_receive_count or 1})
            sqs.create_queue(QueueName=queue.name, Attributes=attributes)

    services.on_first_use("dynamodb", tables)
    services.on_first_use("s3", buckets)
    services.on_first_use("stepfunctions", state_machines)
    services.on_first_use("events", rules)
    services.on_first_use("sqs", queues)


def put_secure_parameter(services: MotoServices, name: str, value: str) -> None:
    services.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
