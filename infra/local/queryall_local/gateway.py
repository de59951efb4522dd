"""A local API Gateway HTTP API (Lambda proxy, payload format 2.0) for the template's routes.

Each request is matched against the template's routes with HTTP API's precedence (exact
method+path, then path variables, then greedy ``{proxy+}``, then ``$default``), turned into the
v2 event API Gateway would send, handed to the runtime, and the function's result mapped back to
an HTTP response the way API Gateway does it.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from .template import ACCOUNT_ID, DEFAULT_ROUTE_KEY, LOCAL_API_ID, RouteSpec

LOG = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_NOT_FOUND = {"message": "Not Found"}
_INTERNAL_ERROR = {"message": "Internal Server Error"}
_TOO_LARGE = {"message": "Request Entity Too Large"}


class Invoker(Protocol):
    def invoke(self, name: str, event: Any) -> Any: ...


class PortInUseError(OSError):
    """The gateway's host:port is already taken."""


# --------------------------------------------------------------------------------------------
# Route matching


def _segments(path: str) -> list[str]:
    return path.split("/")[1:] if path.startswith("/") else path.split("/")


def _match_path(template: str, path: str) -> dict[str, str] | None:
    """Path parameters if ``path`` fits the route ``template``, else None."""
    pattern, actual = _segments(template), _segments(path)
    params: dict[str, str] = {}
    for index, part in enumerate(pattern):
        if part.startswith("{") and part.endswith("+}"):
            rest = actual[index:]
            # A greedy variable needs at least one non-empty segment, like API Gateway's {proxy+}.
            if index != len(pattern) - 1 or not rest or rest == [""]:
                return None
            params[part[1:-2]] = urllib.parse.unquote("/".join(rest))
            return params
        if index >= len(actual):
            return None
        if part.startswith("{") and part.endswith("}"):
            if actual[index] == "":
                return None
            params[part[1:-1]] = urllib.parse.unquote(actual[index])
        elif part != actual[index]:
            return None
    return params if len(actual) == len(pattern) else None


def _specificity(route: RouteSpec) -> tuple[int, tuple[int, ...], int]:
    # Higher sorts first: no greedy variable, then literal segments earliest, then an explicit
    # method over ANY.
    parts = _segments(route.path)
    greedy = any(p.startswith("{") and p.endswith("+}") for p in parts)
    literal = tuple(0 if p.startswith("{") else 1 for p in parts)
    return (0 if greedy else 1, literal, 0 if route.method == "ANY" else 1)


def match_route(routes: Sequence[RouteSpec], method: str, path: str) -> tuple[RouteSpec, dict[str, str]] | None:
    """The route API Gateway would pick for ``method path`` and its path parameters, or None."""
    method = method.upper()
    candidates: list[tuple[RouteSpec, dict[str, str]]] = []
    default: RouteSpec | None = None
    for route in routes:
        if route.path == DEFAULT_ROUTE_KEY:
            default = route
            continue
        if route.method not in (method, "ANY"):
            continue
        params = _match_path(route.path, path)
        if params is not None:
            candidates.append((route, params))
    if candidates:
        return max(candidates, key=lambda c: _specificity(c[0]))
    if default is not None:
        return default, {}
    return None


# --------------------------------------------------------------------------------------------
# Event and response mapping


def build_event(
    *,
    route: RouteSpec,
    path_parameters: dict[str, str],
    method: str,
    raw_path: str,
    raw_query: str,
    header_items: Sequence[tuple[str, str]],
    body: bytes,
    source_ip: str,
    api_id: str = LOCAL_API_ID,
    protocol: str = "HTTP/1.1",
    server_port: int | None = None,
    now: datetime | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The payload-format-2.0 event API Gateway sends for this request."""
    now = now or datetime.now(UTC)
    request_id = request_id or _request_id()
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in header_items:
        key = name.lower()
        if key == "cookie":
            # v2 moves cookies out of the headers into their own list.
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    headers.setdefault("x-forwarded-for", source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    if server_port is not None:
        headers.setdefault("x-forwarded-port", str(server_port))

    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value

    domain = headers.get("host", "localhost").rsplit(":", 1)[0] if headers.get("host") else "localhost"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        try:
            event["body"] = body.decode("utf-8")
            event["isBase64Encoded"] = False
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def map_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) API Gateway would return for the function's ``result``.

    A dict with ``statusCode`` is a proxy response; anything else is returned as a JSON 200,
    as HTTP APIs do for format 2.0. A malformed proxy response raises ValueError (→ 500).
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, [("content-type", "application/json")], json.dumps(result).encode("utf-8")
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        raise ValueError(f"statusCode {result['statusCode']!r} is not an integer") from None
    if not 100 <= status <= 599:
        raise ValueError(f"statusCode {status} is out of range")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), _header_value(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name), _header_value(value)))
    for cookie in result.get("cookies") or []:
        headers.append(("set-cookie", str(cookie)))
    body = result.get("body")
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    else:
        data = json.dumps(body).encode("utf-8")
    return status, headers, data


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _request_id() -> str:
    # Same shape as API Gateway's ids (e.g. "JKJaXmPLvHcESHA="): base64 of random bytes.
    return base64.b64encode(os.urandom(10)).decode("ascii")


# --------------------------------------------------------------------------------------------
# Server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 makes bursts of clients wait for SYN retransmits (~1 s).
    request_queue_size = 128
    gateway: LocalGateway


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "queryall-local-apigw"
    sys_version = ""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)

    def _handle(self) -> None:
        gateway = self.server.gateway
        request_id = _request_id()
        started = time.monotonic()
        body = self._read_body()
        if body is None:
            self._send(413, [("content-type", "application/json")], json.dumps(_TOO_LARGE).encode(), request_id)
            self.close_connection = True
            return
        raw_path, _, raw_query = self.path.partition("?")
        if "://" in raw_path:  # absolute-form request target (proxies)
            raw_path = urllib.parse.urlsplit(raw_path).path or "/"
        matched = match_route(gateway.routes, self.command, raw_path)
        if matched is None:
            self._send(404, [("content-type", "application/json")], json.dumps(_NOT_FOUND).encode(), request_id)
            return
        route, path_parameters = matched
        event = build_event(
            route=route,
            path_parameters=path_parameters,
            method=self.command,
            raw_path=raw_path,
            raw_query=raw_query,
            header_items=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            api_id=gateway.api_id,
            protocol=self.request_version,
            server_port=gateway.port,
            request_id=request_id,
        )
        try:
            result = gateway.invoker.invoke(route.function, event)
            status, headers, data = map_response(result)
        except Exception:
            LOG.exception("%s %s: %s failed", self.command, raw_path, route.function)
            status, headers, data = (
                500,
                [("content-type", "application/json")],
                json.dumps(_INTERNAL_ERROR).encode(),
            )
        self._send(status, headers, data, request_id)
        LOG.debug(
            "%s %s -> %s %s (%.0f ms)",
            self.command,
            raw_path,
            route.route_key,
            status,
            (time.monotonic() - started) * 1000,
        )

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds the limit."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                size += length
                if size > self.server.gateway.max_body_bytes:
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.gateway.max_body_bytes:
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes, request_id: str) -> None:
        self.send_response(status, _reason(status))
        for name, value in headers:
            # Framing is ours to decide; a handler's Content-Length could contradict the body.
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("apigw-requestid", request_id)
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class LocalGateway:
    """Serve ``routes`` on ``host:port`` (0 → a free port), invoking functions through ``invoker``."""

    def __init__(
        self,
        routes: Sequence[RouteSpec],
        invoker: Invoker,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_id: str = LOCAL_API_ID,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.routes = list(routes)
        self.invoker = invoker
        self.api_id = api_id
        self.max_body_bytes = max_body_bytes
        self._host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("gateway is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("gateway already started")
        try:
            server = _Server((self._host, self._requested_port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(exc.errno, f"{self._host}:{self._requested_port} is already in use") from exc
            raise
        server.gateway = self
        self._server = server
        # Listening from here on (bind+listen happen in the constructor): connections queue in the
        # backlog until serve_forever picks them up, so the gateway accepts requests on return.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="queryall-local-apigw", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> LocalGateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
