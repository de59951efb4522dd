"""A local API Gateway HTTP API (Lambda proxy, payload format 2.0) for the template's routes.

Each request is matched against the template's routes with HTTP API's precedence (exact
method+path, then path variables, then greedy ``{proxy+}``, then ``$default``), turned into the
v2 event API Gateway would send, handed to the runtime, and the function's result mapped back to
an HTTP response the way API Gateway does it.

HTTP itself (request line, headers, chunked bodies) is werkzeug's threaded server's job; on top of it
this module enforces HTTP API's quotas and answers what API Gateway answers itself, in its words
(``{"message": "..."}``): a request it refuses never reaches a function.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import re
import selectors
import socket
import threading
import time
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol

from werkzeug.serving import BaseWSGIServer, DechunkedInput, WSGIRequestHandler, make_server

from .template import ACCOUNT_ID, DEFAULT_ROUTE_KEY, LOCAL_API_ID, RouteSpec

LOG = logging.getLogger(__name__)

# HTTP API quotas (docs: "Quotas for configuring and running an HTTP API in API Gateway").
MAX_BODY_BYTES = 10 * 1024 * 1024  # "Payload size: 10 MB"
MAX_REQUEST_HEAD_BYTES = 10240  # "Total combined size of request line and header values: 10240 bytes"
# The methods an HTTP API routes (ANY means these); any other method never reaches a function.
HTTP_API_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
IDLE_TIMEOUT_SECONDS = 30
# A backlog of 5 makes bursts of clients wait for SYN retransmits (~1 s); at 128, 500 pollers at once
# overflowed it and connections were reset (bench/load.py).
_LISTEN_BACKLOG = 1024

# The errors API Gateway answers itself, in its words (the service's own errors are the
# {"error": {"code", "message"}} envelope; these never reach a function).
_GATEWAY_MESSAGES = {
    400: "Bad Request",
    404: "Not Found",
    413: "Request Entity Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_JSON = ("content-type", "application/json")
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_CHUNK_LINE = 4096  # a chunk size with its extensions
_BLANK_LINES_SKIPPED = 4
# Keys the handler adds to the WSGI environ: the request target and header lines as sent.
_REQUEST_TARGET = "queryall.request_target"
_HEADER_ITEMS = "queryall.header_items"


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
# What API Gateway answers itself, before any function runs


class _GatewayAnswer(Exception):
    """The request ends at the gateway with ``status`` and API Gateway's ``{"message": ...}`` body."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def gateway_error_body(status: int) -> bytes:
    """API Gateway's body for an error it answers itself, byte for byte (compact JSON)."""
    return json.dumps({"message": _GATEWAY_MESSAGES[status]}, separators=(",", ":")).encode()


def _framing_problem(command: str, headers: Any, request_line_bytes: int) -> int | None:
    """The status API Gateway answers for a request whose head it refuses, or None when it is fine."""
    if command not in HTTP_API_METHODS:
        return 400
    size = request_line_bytes + sum(len(name) + len(value) for name, value in headers.items())
    if size > MAX_REQUEST_HEAD_BYTES:
        return 431
    lengths = headers.get_all("Content-Length") or []
    if lengths and not (all(_DIGITS.fullmatch(v) for v in lengths) and len(set(map(int, lengths))) == 1):
        return 400  # "-1", "abc", "5, 6", or two different lengths: the body's end is unknown
    encodings = headers.get_all("Transfer-Encoding") or []
    if encodings and ([e.strip().lower() for e in encodings] != ["chunked"] or lengths):
        return 400  # only plain chunked, and never together with a length (request smuggling)
    return None


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body; a _GatewayAnswer when it is over ``limit`` (413) or its framing is broken (400)."""
    stream = environ["wsgi.input"]
    try:
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's reader takes the chunks apart
            data = bytearray()
            while chunk := stream.read(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise _GatewayAnswer(413)
            return bytes(data)
        length = int(environ.get("CONTENT_LENGTH") or 0)  # digits only: checked with the head
        if length > limit:
            raise _GatewayAnswer(413)
        data = stream.read(length) if length else b""
    except OSError as exc:  # a bad chunk size or terminator, or the client went silent
        raise _GatewayAnswer(400) from exc
    if len(data) < length:  # the client closed before sending all it announced
        raise _GatewayAnswer(400)
    return bytes(data)


# --------------------------------------------------------------------------------------------
# Server: werkzeug's threaded WSGI server parses HTTP; the app below is API Gateway.


class _GatewayApp:
    """The WSGI application: route, build the v2 event, invoke, map the result (or answer itself)."""

    def __init__(self, gateway: LocalGateway) -> None:
        self._gateway = gateway

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request_id = _request_id()
        started = time.monotonic()
        method = environ["REQUEST_METHOD"]
        try:
            status, headers, data = self._respond(environ, request_id)
        except _GatewayAnswer as answer:
            status, headers, data = answer.status, [_JSON], gateway_error_body(answer.status)
        except Exception:
            LOG.exception("%s %s failed", method, environ.get(_REQUEST_TARGET))
            status, headers, data = 500, [_JSON], gateway_error_body(500)
        # Framing is ours to decide; a handler's Content-Length could contradict the body.
        out = [(n, v) for n, v in headers if n.lower() not in ("content-length", "connection", "transfer-encoding")]
        out += [("Content-Length", str(len(data))), ("apigw-requestid", request_id)]
        start_response(f"{status} {_reason(status)}".rstrip(), out)
        LOG.debug("%s %s -> %s (%.0f ms)", method, environ.get(_REQUEST_TARGET), status,
                  (time.monotonic() - started) * 1000)
        return [b"" if method == "HEAD" else data]

    def _respond(self, environ: dict[str, Any], request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        gateway = self._gateway
        body = _read_body(environ, gateway.max_body_bytes)
        raw_path, _, raw_query = environ[_REQUEST_TARGET].partition("?")
        if "://" in raw_path:  # absolute-form request target (proxies)
            raw_path = urllib.parse.urlsplit(raw_path).path or "/"
        method = environ["REQUEST_METHOD"]
        matched = match_route(gateway.routes, method, raw_path)
        if matched is None:
            raise _GatewayAnswer(404)
        route, path_parameters = matched
        event = build_event(
            route=route,
            path_parameters=path_parameters,
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            header_items=environ[_HEADER_ITEMS],
            body=body,
            source_ip=environ["REMOTE_ADDR"],
            api_id=gateway.api_id,
            protocol=environ["SERVER_PROTOCOL"],
            server_port=gateway.port,
            request_id=request_id,
        )
        rejection = gateway.authorizer(event) if gateway.authorizer is not None else None
        if rejection is not None:  # the JWT authorizer's 401 (jwt_auth): the function never runs
            return rejection.status, [_JSON], json.dumps(rejection.body).encode()
        try:
            return map_response(gateway.invoker.invoke(route.function, event))
        except Exception:
            LOG.exception("%s %s: %s failed", method, raw_path, route.function)
            return 500, [_JSON], gateway_error_body(500)


class _Handler(WSGIRequestHandler):
    """werkzeug's request handler with API Gateway's limits on the request head and its error bodies."""

    server_version = "queryall-local-apigw"  # instead of werkzeug's version (a property there)
    # A client silent this long in the middle of a request is dropped instead of holding a thread.
    timeout = IDLE_TIMEOUT_SECONDS

    def parse_request(self) -> bool:
        # HTTP/1.1 asks servers to skip empty lines before a request line (RFC 9112, 2.2).
        for _ in range(_BLANK_LINES_SKIPPED):
            if self.raw_requestline not in (b"\r\n", b"\n"):
                break
            self.raw_requestline = self.rfile.readline(65537)
        line = self.raw_requestline.rstrip(b"\r\n")
        # What http.server's parse_request would set first; the early answers below need them.
        self.command, self.request_version = "", self.protocol_version
        self.requestline = line[:200].decode("iso-8859-1")
        if len(line) > MAX_REQUEST_HEAD_BYTES:
            self.send_error(414)
            return False
        words = line.split()
        if words and len(words) != 3:
            # No version (HTTP/0.9: http.server would wait for headers that never come) or a raw
            # space in the target.
            self.send_error(400)
            return False
        if not super().parse_request():
            return False
        target = self.path
        if not (target.startswith("/") or target.startswith(("http://", "https://"))) or not _target_parses(target):
            self.send_error(400)
            return False
        problem = _framing_problem(self.command, self.headers, len(line))
        if problem is not None:
            self.send_error(problem)
            return False
        return True

    def version_string(self) -> str:
        return self.server_version  # the Server header, without Python's version

    def handle_expect_100(self) -> bool:
        return True  # werkzeug sends the "100 Continue" itself; http.server would send a second one

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        # The raw target and every header line as sent: werkzeug's environ decodes the path and
        # drops header names with "_", while API Gateway hands both to the function unchanged.
        environ[_REQUEST_TARGET] = self.path
        environ[_HEADER_ITEMS] = list(self.headers.items())
        if environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = _Dechunked(self.rfile)
        return environ

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad line, too many or too long headers) as API Gateway words them."""
        status = code if code in _GATEWAY_MESSAGES and code < 500 else 400
        self.close_connection = True
        if self.request_version in ("", "HTTP/0.9"):
            self.request_version = "HTTP/1.1"  # so the status line and headers are written
        data = gateway_error_body(status)
        try:
            self.send_response(status, _reason(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("apigw-requestid", _request_id())
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
            self._drain()
        except OSError:
            pass  # the client is gone; nothing left to tell it

    def _drain(self) -> None:
        # Read what the client already sent (briefly, bounded) before closing: closing a socket
        # with unread data resets the connection, and the client could lose the answer.
        total = 0
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            while total <= 2 * MAX_BODY_BYTES and selector.select(timeout=0.05):
                data = self.connection.recv(64 * 1024)
                if not data:
                    break
                total += len(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        LOG.debug("%s %s %s", self.address_string(), self.requestline, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), message % args if args else message)


class _Dechunked(DechunkedInput):
    """werkzeug's chunked reader, also taking chunk extensions (``5;name=value``), which HTTP allows."""

    def read_chunk_len(self) -> int:
        line = self._rfile.readline(_MAX_CHUNK_LINE)
        size = line.split(b";", 1)[0].strip(b" \t\r\n")
        if not _HEX.fullmatch(size):
            raise OSError(f"invalid chunk size line {line[:40]!r}")
        return int(size, 16)


def _target_parses(target: str) -> bool:
    try:
        urllib.parse.urlsplit(target)
    except ValueError:
        return False
    return True


def _reason(status: int) -> str:
    if status in _GATEWAY_MESSAGES:  # the status line says what the body says
        return _GATEWAY_MESSAGES[status]
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
        authorizer: Any = None,
    ) -> None:
        self.routes = list(routes)
        # Called with each event before its function: None to go on, else a Rejection (jwt_auth).
        self.authorizer = authorizer
        self.invoker = invoker
        self.api_id = api_id
        self.max_body_bytes = max_body_bytes
        self._host = host
        self._requested_port = port
        self._server: BaseWSGIServer | None = None
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
        # Bound here rather than by werkzeug, which prints and exits the process on a taken port.
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._host, self._requested_port))
            listener.listen(_LISTEN_BACKLOG)
            server = make_server(
                self._host,
                listener.getsockname()[1],
                _GatewayApp(self),
                threaded=True,
                request_handler=_Handler,
                fd=listener.fileno(),
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(exc.errno, f"{self._host}:{self._requested_port} is already in use") from exc
            raise
        finally:
            listener.close()  # the server holds its own duplicate of the socket
        self._server = server
        # Listening from here on: connections queue in the backlog until serve_forever picks them
        # up, so the gateway accepts requests on return.
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
