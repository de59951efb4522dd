"""Run the template's Lambda handlers in this process, the way the Lambda service would.

Handlers are imported lazily by module path and called with a Lambda-like context object.
Anything in the process that calls ``lambda.Invoke`` through boto3 for one of the template's
functions (moto's Step Functions interpreter, the submit handler invoking the SQL guard) is
answered in-process by a ``before-call`` hook: botocore then skips the HTTP request and uses
our response, shaped exactly like the real service's (``FunctionError: Unhandled`` plus the
``errorType``/``errorMessage`` payload when the handler raised, so Step Functions' Catch sees
``Error`` = the exception class name).
"""

from __future__ import annotations

import contextlib
import decimal
import importlib
import io
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody

from . import log_keys
from .moto_services import builtin_handler
from .own_patches import OwnPatches
from .sessions import SerializedSession
from .template import REGION, FunctionSpec, StackSpec

LOG = logging.getLogger(__name__)

_HOOK_EVENT = "before-call.lambda.Invoke"
# Ambient settings that would send boto3 elsewhere (a real profile, a service-specific endpoint,
# a shared config file with endpoints or credentials) are hidden while a runtime is installed.
_HIDDEN_ENV_PREFIXES = ("AWS_ENDPOINT_URL_",)
_HIDDEN_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


class RuntimeConfigError(RuntimeError):
    """The template's functions cannot share one process (e.g. conflicting environment values)."""


class UnknownFunctionError(LookupError):
    """No function of that name, logical id or ARN in the template."""


class LambdaMarshalError(Exception):
    """The handler returned something Lambda cannot serialise to JSON."""


@dataclass
class LambdaContext:
    """The attributes and method of the Python runtime's context object."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str  # a string, as the real runtime reads it from the environment
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_epoch_ms: int
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_epoch_ms - int(time.time() * 1000))


def error_payload(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """The payload Lambda returns for an unhandled exception."""
    error_type = "Runtime.MarshalError" if isinstance(exc, LambdaMarshalError) else type(exc).__name__
    payload: dict[str, Any] = {
        "errorMessage": str(exc),
        "errorType": error_type,
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }
    if request_id:
        payload["requestId"] = request_id
    return payload


def marshal(result: Any) -> bytes:
    """Serialise a handler result the way the Lambda runtime does.

    Like the runtime's encoder, a Decimal (what DynamoDB returns) is written as the exact number
    text ``str(d)``, not via float. Stdlib json cannot emit raw text, so each Decimal becomes a
    marker string that is swapped for its digits afterwards.
    """
    if isinstance(result, bytes):
        return result
    nonce = uuid.uuid4().hex

    def default(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return f"\x00{nonce}:{'NaN' if value.is_nan() else value}\x00"
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    try:
        text = json.dumps(result, default=default, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise LambdaMarshalError(f"Unable to marshal response: {exc}") from exc
    if nonce in text:
        text = re.sub(r'"\\u0000' + nonce + r':([^"\\]*)\\u0000"', r"\1", text)
    return text.encode("utf-8")


@contextlib.contextmanager
def _default_session() -> Iterator[None]:
    """A fresh default session, built with the runtime's environment and hooks; none afterwards."""
    boto3.DEFAULT_SESSION = SerializedSession()
    try:
        yield
    finally:
        # The default session was built for our endpoint; let the next user build its own.
        boto3.DEFAULT_SESSION = None


# The runtime whose functions the hook answers for. The hook itself stays registered on sessions
# created meanwhile; with no active runtime it steps aside and the call goes to the endpoint.
_ACTIVE: LambdaRuntime | None = None
_ACTIVE_LOCK = threading.Lock()


def active() -> LambdaRuntime | None:
    """The runtime installed in this process, if any."""
    return _ACTIVE


def _invoke_hook(model: Any = None, params: Mapping[str, Any] | None = None, **_: Any) -> Any:
    runtime = _ACTIVE
    if runtime is None or params is None:
        return None
    return runtime._answer_invoke(params)


class LambdaRuntime(OwnPatches):
    """Runs the template's handlers in-process and answers boto3 ``lambda.Invoke`` calls for them.

    ``install()`` (done by the stack) puts the functions' environment into os.environ, points boto3
    at ``endpoint_url`` and registers the Invoke hook; ``uninstall()`` undoes all of it. ``invoke()``
    works either way, but handlers that call AWS need the runtime installed.
    """

    def __init__(
        self,
        spec: StackSpec,
        *,
        endpoint_url: str | None = None,
        enable_metrics: bool = False,
        extra_environment: Mapping[str, str] | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.spec = spec
        self.endpoint_url = endpoint_url
        # Every Lambda runs on this machine's cores: Invoke calls from outside a handler (Step Functions'
        # Map iterations) queue for one of max_concurrency slots instead of 40 threads thrashing 2 cores.
        self.max_concurrency = max_concurrency or os.cpu_count() or 1
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._in_handler = threading.local()
        self._enable_metrics = enable_metrics
        self._extra_environment = dict(extra_environment or {})
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._import_lock = threading.RLock()
        self._added_paths: list[str] = []
        self._installed = False
        self._background: set[threading.Thread] = set()
        self._background_lock = threading.Lock()
        # Local fault injection (queryall_local.faults): given a function (logical id) and its payload, an error payload
        # to answer with instead of running it, or None.
        self.faults: Callable[[str, bytes], bytes | None] | None = None

    # ----------------------------------------------------------------------------- environment

    def environment(self) -> dict[str, str]:
        """os.environ as the handlers need it: every function's variables plus local AWS settings.

        Handlers share one process, so their variables must agree: the template keeps them
        distinct, and a conflict is reported instead of one function silently seeing the other's.
        """
        merged: dict[str, str] = {}
        owner: dict[str, str] = {}
        for function in self.spec.functions.values():
            for key, value in function.environment.items():
                if key in merged and merged[key] != value:
                    raise RuntimeConfigError(
                        f"environment variable {key} is {merged[key]!r} in {owner[key]} but {value!r} in "
                        f"{function.logical_id}; in-process handlers share os.environ, "
                        "so give them distinct names"
                    )
                merged[key] = value
                owner.setdefault(key, function.logical_id)
        merged.update(
            {
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                # Never fall back to instance metadata (a network call) for anything.
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        if not self._enable_metrics:
            merged["POWERTOOLS_METRICS_DISABLED"] = "true"
        if self.endpoint_url:
            merged["AWS_ENDPOINT_URL"] = self.endpoint_url  # honoured by every boto3 client
        merged.update(self._extra_environment)
        return merged

    def install(self, patches: contextlib.ExitStack | None = None) -> None:
        """Apply the environment, make handler packages importable and start answering Invoke.

        Every process-wide change is entered into ``patches`` (the local stack's ExitStack; by default
        one of the runtime's own, closed by :meth:`uninstall`), which undoes them in reverse.
        """
        if self._installed:
            return
        environment = self.environment()  # validate before touching anything
        patches = self._patches_or_own(patches)
        with contextlib.ExitStack() as installing:
            installing.enter_context(self._active())
            installing.enter_context(mock.patch.dict(os.environ))  # restores os.environ exactly
            for key in list(os.environ):
                if key in _HIDDEN_ENV or key.startswith(_HIDDEN_ENV_PREFIXES):
                    del os.environ[key]
            os.environ.update(environment)
            installing.enter_context(self._code_on_sys_path())
            # Every session created from now on gets the hook (botocore copies BUILTIN_HANDLERS into
            # each new session), including a default session a handler or library sets up itself.
            installing.enter_context(builtin_handler(_HOOK_EVENT, _invoke_hook))
            installing.enter_context(_default_session())
            installing.enter_context(log_keys.installed())  # functions run in threads of one process
            installing.callback(self._reset_caches_quietly)  # clients cached by handlers point at this moto
            installing.callback(self.wait_for_background, timeout=5)
            self._handlers.clear()
            self.reset_caches()
            self._installed = True
            installing.callback(setattr, self, "_installed", False)
            patches.push(installing.pop_all())

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        global _ACTIVE
        with _ACTIVE_LOCK:
            if _ACTIVE is not None and _ACTIVE is not self:
                raise RuntimeError("another LambdaRuntime is installed in this process; uninstall it first")
            _ACTIVE = self
        try:
            yield
        finally:
            with _ACTIVE_LOCK:
                if _ACTIVE is self:
                    _ACTIVE = None

    @contextlib.contextmanager
    def _code_on_sys_path(self) -> Iterator[None]:
        """The functions' code folders on sys.path (also those :meth:`handler` adds later), then gone."""
        for code_dir in {str(f.code_dir) for f in self.spec.functions.values() if f.code_dir}:
            if code_dir not in sys.path:
                sys.path.insert(0, code_dir)
                self._added_paths.append(code_dir)
        try:
            yield
        finally:
            for path in self._added_paths:
                if path in sys.path:
                    sys.path.remove(path)
            self._added_paths.clear()

    def _reset_caches_quietly(self) -> None:
        try:
            self.reset_caches()
        except Exception as exc:
            LOG.warning("reset_caches() failed while uninstalling the runtime: %s", exc)

    def uninstall(self) -> None:
        """Undo :meth:`install` when it made its own ExitStack (a stack's is closed by the stack)."""
        self._close_own_patches()

    _begin, _end = install, uninstall  # what `with` does

    def reset_caches(self) -> None:
        """Call ``<package>.settings.reset_caches()`` of each handler package that has one.

        Handler modules cache settings and boto3 clients at module level; after the environment
        changes (a new stack in the same process, a new moto port) those caches are stale.
        Packages whose settings were never imported are skipped.
        """
        packages = sorted({f.module.split(".", 1)[0] for f in self.spec.functions.values()})
        for package in packages:
            # A settings module not imported yet has nothing cached (and importing it would cost a start).
            module = sys.modules.get(f"{package}.settings")
            if module is None:
                continue
            reset = getattr(module, "reset_caches", None)
            if callable(reset):
                reset()

    # ----------------------------------------------------------------------------- invocation

    def function(self, name_or_arn: str) -> FunctionSpec:
        spec = self.spec.function(name_or_arn)
        if spec is None:
            raise UnknownFunctionError(f"no function {name_or_arn!r} in {self.spec.template_path}")
        return spec

    def handler(self, name_or_arn: str) -> Callable[[Any, Any], Any]:
        """The handler callable, imported on first use (thread-safe: Map runs handlers in threads)."""
        function = self.function(name_or_arn)
        cached = self._handlers.get(function.logical_id)
        if cached is not None:
            return cached
        with self._import_lock:
            cached = self._handlers.get(function.logical_id)
            if cached is not None:
                return cached
            if not function.runtime.startswith("python"):
                raise RuntimeConfigError(f"{function.logical_id}: runtime {function.runtime} cannot run in-process")
            if function.code_dir and str(function.code_dir) not in sys.path:
                sys.path.insert(0, str(function.code_dir))
                self._added_paths.append(str(function.code_dir))
            module = importlib.import_module(function.module)
            handler = getattr(module, function.attribute, None)
            if not callable(handler):
                raise RuntimeConfigError(f"{function.logical_id}: {function.handler} is not a callable in {module}")
            self._handlers[function.logical_id] = handler
            return handler

    def context(self, name_or_arn: str, request_id: str | None = None) -> LambdaContext:
        function = self.function(name_or_arn)
        now = datetime.now(UTC)
        request_id = request_id or str(uuid.uuid4())
        return LambdaContext(
            function_name=function.name,
            function_version="$LATEST",
            invoked_function_arn=function.arn,
            memory_limit_in_mb=str(function.memory),
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{function.name}",
            log_stream_name=f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            deadline_epoch_ms=int(time.time() * 1000) + function.timeout * 1000,
        )

    def invoke(self, name_or_arn: str, event: Any, *, request_id: str | None = None) -> Any:
        """Run the function on ``event`` and return its result after a JSON round trip.

        The event and result go through JSON as they would across the Lambda boundary, so a
        handler that mutates its event or returns something unserialisable behaves as deployed.
        Exceptions from the handler propagate unchanged (a bad result raises LambdaMarshalError).
        """
        function = self.function(name_or_arn)
        handler = self.handler(function.logical_id)
        event = json.loads(marshal(event)) if event is not None else None
        context = self.context(function.logical_id, request_id)
        started = time.monotonic()
        depth = getattr(self._in_handler, "depth", 0)
        self._in_handler.depth = depth + 1
        try:
            with log_keys.own_keys():  # what the invocation sets is gone when it returns
                result = handler(event, context)
        finally:
            self._in_handler.depth = depth
            elapsed = time.monotonic() - started
            if elapsed > function.timeout:
                # Not enforced (a thread cannot be killed), but it would have failed on AWS.
                LOG.warning(
                    "%s ran %.1fs, longer than its %ss Timeout; on AWS it would have been stopped",
                    function.logical_id,
                    elapsed,
                    function.timeout,
                )
        payload = marshal(result)
        try:
            return json.loads(payload)
        except ValueError:
            return payload.decode("utf-8", errors="replace")

    def invoke_raw(self, name_or_arn: str, payload: bytes) -> tuple[bytes, str | None]:
        """Lambda's wire contract: JSON bytes in, (JSON bytes out, FunctionError or None)."""
        request_id = str(uuid.uuid4())
        try:
            event = json.loads(payload) if payload else {}
        except ValueError as exc:
            body = {
                "errorMessage": f"Could not parse request body into json: {exc}",
                "errorType": "InvalidRequestContentException",
            }
            return json.dumps(body).encode(), "Unhandled"
        try:
            result = self.invoke(name_or_arn, event, request_id=request_id)
        except Exception as exc:
            LOG.info(
                "%s failed: %s: %s",
                name_or_arn,
                type(exc).__name__,
                exc,
                exc_info=LOG.isEnabledFor(logging.DEBUG),
            )
            return json.dumps(error_payload(exc, request_id)).encode(), "Unhandled"
        return marshal(result), None

    def invoke_async(self, name_or_arn: str, payload: bytes) -> threading.Thread:
        """``InvocationType=Event``: run in a background thread, errors only logged (no retries)."""
        self.function(name_or_arn)  # unknown names fail now, like the 404 the service returns

        def run() -> None:
            try:
                _, function_error = self.invoke_raw(name_or_arn, payload)
                if function_error:
                    LOG.warning("async invocation of %s failed", name_or_arn)
            finally:
                with self._background_lock:
                    self._background.discard(thread)

        thread = threading.Thread(target=run, name=f"lambda-event-{name_or_arn}", daemon=True)
        with self._background_lock:
            self._background.add(thread)
        thread.start()
        return thread

    def wait_for_background(self, timeout: float | None = None) -> None:
        """Wait for ``InvocationType=Event`` invocations still running (bounded by ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._background_lock:
                threads = list(self._background)
            if not threads:
                return
            for thread in threads:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(remaining)
            if deadline is not None and time.monotonic() >= deadline:
                return

    # ----------------------------------------------------------------------------- boto3 hook

    def _answer_invoke(self, params: Mapping[str, Any]) -> tuple[AWSResponse, dict[str, Any]] | None:
        url_path = str(params.get("url_path", ""))
        marker = "/functions/"
        if marker not in url_path:
            return None
        encoded_name = url_path.split(marker, 1)[1].split("/", 1)[0]
        name = urllib.parse.unquote(encoded_name)
        if self.spec.function(name) is None:
            return None  # not ours: let the request reach moto, which answers for real
        headers = {str(k).lower(): str(v) for k, v in (params.get("headers") or {}).items()}
        invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
        body = params.get("body") or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            body = body.read()  # a file-like Payload

        if invocation_type == "DryRun":
            return _response(204, b"", None)
        if invocation_type == "Event":
            self.invoke_async(name, body)
            return _response(202, b"", None)
        injected = self.faults(self.function(name).logical_id, body) if self.faults is not None else None
        if injected is not None:
            return _response(200, injected, "Unhandled")
        if getattr(self._in_handler, "depth", 0):  # a handler invoking another (submit -> SqlGuard): no slot
            payload, function_error = self.invoke_raw(name, body)
        else:
            with self._slots:
                payload, function_error = self.invoke_raw(name, body)
        return _response(200, payload, function_error)


class _RawBody:
    """Enough of urllib3's response for AWSResponse.content (read by some after-call handlers)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self._data


def _response(status: int, payload: bytes, function_error: str | None) -> tuple[AWSResponse, dict[str, Any]]:
    request_id = str(uuid.uuid4())
    headers = {
        "content-type": "application/json",
        "content-length": str(len(payload)),
        "x-amzn-requestid": request_id,
        "x-amz-executed-version": "$LATEST",
    }
    if function_error:
        headers["x-amz-function-error"] = function_error
    http = AWSResponse("http://local.invalid/lambda", status, headers, _RawBody(payload))
    parsed: dict[str, Any] = {
        "ResponseMetadata": {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        },
        "StatusCode": status,
        "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
    }
    if status == 200:
        parsed["ExecutedVersion"] = "$LATEST"
    if function_error:
        parsed["FunctionError"] = function_error
    return http, parsed
