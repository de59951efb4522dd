"""The local HTTP API over real HTTP: v2 events in, API Gateway response mapping out."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from queryall_local.gateway import LocalGateway, PortInUseError, match_route
from queryall_local.template import RouteSpec, load_template

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]

ROUTES = [
    RouteSpec("POST", "/query-all", "Submit"),
    RouteSpec("GET", "/query-all/jobs/{jobId}", "Poll"),
    RouteSpec("GET", "/query-all/jobs/latest", "Latest"),
    RouteSpec("ANY", "/files/{proxy+}", "Files"),
    RouteSpec("DELETE", "/files/{proxy+}", "DeleteFiles"),
    RouteSpec("ANY", "$default", "Fallback"),
]


class FakeRuntime:
    """Records events; answers with whatever the test queued for the function (default: the event)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.results: dict[str, Any] = {}
        self.lock = threading.Lock()

    def invoke(self, name: str, event: Any) -> Any:
        with self.lock:
            self.events.append((name, event))
        result = self.results.get(name, {"statusCode": 200, "body": json.dumps({"echo": name})})
        if isinstance(result, BaseException):
            raise result
        return result

    @property
    def last(self) -> tuple[str, dict[str, Any]]:
        return self.events[-1]


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def gateway(runtime: FakeRuntime) -> Iterator[LocalGateway]:
    gw = LocalGateway(ROUTES, runtime, "127.0.0.1", 0)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def call(
    gw: LocalGateway,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    request = urllib.request.Request(gw.url + path, data=body, method=method)
    for name, value in headers or []:
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


def raw_call(gw: LocalGateway, request_text: bytes) -> bytes:
    """Send bytes as-is (urllib merges repeated headers itself; API Gateway sees each one)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(request_text)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def raw_call_ok(gw: LocalGateway, request_text: bytes) -> None:
    """Send bytes as-is; the gateway answers 200 (the fake runtime's reply)."""
    assert raw_call(gw, request_text).startswith(b"HTTP/1.1 200")


# ---------------------------------------------------------------------------- route matching


def test_route_precedence() -> None:
    def pick(method: str, path: str) -> tuple[str, dict[str, str]]:
        matched = match_route(ROUTES, method, path)
        assert matched is not None
        return matched[0].function, matched[1]

    assert pick("POST", "/query-all") == ("Submit", {})
    assert pick("GET", "/query-all/jobs/abc") == ("Poll", {"jobId": "abc"})
    # a literal segment beats a path variable
    assert pick("GET", "/query-all/jobs/latest") == ("Latest", {})
    assert pick("GET", "/files/a/b/c.txt") == ("Files", {"proxy": "a/b/c.txt"})
    # an explicit method beats ANY for the same path
    assert pick("DELETE", "/files/a") == ("DeleteFiles", {"proxy": "a"})
    # no match (wrong method, extra segment, empty variable, trailing slash) → $default
    assert pick("GET", "/query-all") == ("Fallback", {})
    assert pick("GET", "/query-all/jobs/abc/extra") == ("Fallback", {})
    assert pick("GET", "/query-all/jobs/") == ("Fallback", {})
    assert pick("GET", "/files") == ("Fallback", {})
    assert match_route(ROUTES[:-1], "GET", "/nowhere") is None


def test_real_template_routes() -> None:
    spec = load_template(ROOT / "template.yaml")
    matched = match_route(spec.routes, "GET", "/query-all/jobs/j-1")
    assert matched is not None
    assert (matched[0].route_key, matched[1]) == ("GET /query-all/jobs/{jobId}", {"jobId": "j-1"})
    fallback = match_route(spec.routes, "PUT", "/anything")
    assert fallback is not None and fallback[0].route_key == "$default"


# ---------------------------------------------------------------------------- request → event


def test_v2_event_fields(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    body = json.dumps({"sql": "SELECT 1"}).encode()
    reply = call(
        gateway,
        "POST",
        "/query-all?limit=5&tag=a&tag=b&empty=",
        body,
        [("Content-Type", "application/json"), ("X-Api-Key", "k1"), ("Cookie", "a=1; b=2")],
    )
    assert reply.status == 200
    assert reply.json() == {"echo": "Submit"}
    name, event = runtime.last
    assert name == "Submit"
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /query-all"
    assert event["rawPath"] == "/query-all"
    assert event["rawQueryString"] == "limit=5&tag=a&tag=b&empty="
    assert event["queryStringParameters"] == {"limit": "5", "tag": "a,b", "empty": ""}
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-api-key"] == "k1"
    assert all(key == key.lower() for key in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert "pathParameters" not in event
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["routeKey"] == "POST /query-all"
    assert context["stage"] == "$default"
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == gateway.api_id
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/query-all"
    assert context["http"]["protocol"] == "HTTP/1.1"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["http"]["userAgent"].startswith("Python-urllib")
    assert isinstance(context["timeEpoch"], int) and context["timeEpoch"] > 1_600_000_000_000
    assert context["requestId"] and reply.headers["apigw-requestid"] == context["requestId"]


def test_path_parameters_and_no_body(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    assert call(gateway, "GET", "/query-all/jobs/job%2D42").status == 200
    _, event = runtime.last
    assert event["routeKey"] == "GET /query-all/jobs/{jobId}"
    assert event["pathParameters"] == {"jobId": "job-42"}
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event
    assert "body" not in event and event["isBase64Encoded"] is False

    call(gateway, "PUT", "/files/x/y/z.bin")
    _, event = runtime.last
    assert event["routeKey"] == "ANY /files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "x/y/z.bin"}


def test_default_route_event(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    assert call(gateway, "PATCH", "/no/such/route?x=1").status == 200
    name, event = runtime.last
    assert name == "Fallback"
    assert event["routeKey"] == "$default"
    assert event["requestContext"]["routeKey"] == "$default"
    assert event["rawPath"] == "/no/such/route"


def test_repeated_headers_are_comma_joined(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    raw_call_ok(gateway, b"GET /query-all/jobs/j1 HTTP/1.1\r\nHost: example.test\r\nX-Multi: one\r\n"
                         b"x-multi: two\r\nConnection: close\r\n\r\n")
    _, event = runtime.last
    assert event["headers"]["x-multi"] == "one,two"
    assert event["requestContext"]["domainName"] == "example.test"
    assert event["requestContext"]["domainPrefix"] == "example"


def test_binary_body_is_base64(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    payload = bytes(range(256))
    call(gateway, "POST", "/query-all", payload, [("Content-Type", "application/octet-stream")])
    _, event = runtime.last
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_chunked_body(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    raw_call_ok(gateway, b"POST /query-all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert runtime.last[1]["body"] == "hello world"


# ---------------------------------------------------------------------------- result → response


def test_proxy_response_mapping(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    runtime.results["Poll"] = {
        "statusCode": 202,
        "headers": {"Content-Type": "application/json", "X-Job": "j1", "X-Count": 3},
        "multiValueHeaders": {"X-Many": ["a", "b"]},
        "cookies": ["session=abc; HttpOnly", "theme=dark"],
        "body": json.dumps({"status": "processing"}),
    }
    reply = call(gateway, "GET", "/query-all/jobs/j1")
    assert reply.status == 202
    assert reply.json() == {"status": "processing"}
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["X-Job"] == "j1"
    assert reply.headers["X-Count"] == "3"
    assert reply.headers.get_all("X-Many") == ["a", "b"]
    assert reply.headers.get_all("Set-Cookie") == ["session=abc; HttpOnly", "theme=dark"]


def test_base64_response_body(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    blob = b"\x00\x01binary\xff"
    runtime.results["Poll"] = {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": base64.b64encode(blob).decode(),
        "isBase64Encoded": True,
    }
    reply = call(gateway, "GET", "/query-all/jobs/j1")
    assert reply.body == blob
    assert reply.headers["Content-Length"] == str(len(blob))


def test_non_proxy_result_is_json_200(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    runtime.results["Poll"] = {"status": "done", "rows": [1, 2]}  # a dict without statusCode
    reply = call(gateway, "GET", "/query-all/jobs/j1")
    assert (reply.status, reply.headers["Content-Type"], reply.json()) == (
        200,
        "application/json",
        {"status": "done", "rows": [1, 2]},
    )
    runtime.results["Poll"] = "plain text"
    reply = call(gateway, "GET", "/query-all/jobs/j1")
    assert (reply.status, reply.json()) == (200, "plain text")
    runtime.results["Poll"] = [1, "two"]
    assert call(gateway, "GET", "/query-all/jobs/j1").json() == [1, "two"]


def test_handler_exception_is_500(
    gateway: LocalGateway, runtime: FakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.results["Submit"] = RuntimeError("boom")
    reply = call(gateway, "POST", "/query-all", b"{}")
    assert reply.status == 500
    assert reply.json() == {"message": "Internal Server Error"}
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info and r.name == "queryall_local.gateway"]
    assert [str(e) for e in logged] == ["boom"]


def test_malformed_proxy_response_is_500(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    runtime.results["Poll"] = {"statusCode": "not-a-number", "body": "x"}
    reply = call(gateway, "GET", "/query-all/jobs/j1")
    assert (reply.status, reply.json()) == (500, {"message": "Internal Server Error"})


def test_not_found_without_default_route(runtime: FakeRuntime) -> None:
    with LocalGateway(ROUTES[:2], runtime) as gw:
        reply = call(gw, "GET", "/nothing/here")
        assert (reply.status, reply.json()) == (404, {"message": "Not Found"})
    assert runtime.events == []


def test_body_limit(runtime: FakeRuntime) -> None:
    with LocalGateway(ROUTES, runtime, max_body_bytes=1024) as gw:
        assert call(gw, "POST", "/query-all", b"x" * 1024).status == 200
        reply = call(gw, "POST", "/query-all", b"x" * 1025)
        assert (reply.status, reply.json()) == (413, {"message": "Request Entity Too Large"})
    assert len(runtime.events) == 1


def test_head_has_no_body(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    reply = call(gateway, "HEAD", "/query-all/jobs/j1")
    assert reply.status == 200 and reply.body == b""
    assert runtime.last[1]["requestContext"]["http"]["method"] == "HEAD"


def test_port_in_use(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    with pytest.raises(PortInUseError):
        LocalGateway(ROUTES, runtime, "127.0.0.1", gateway.port).start()


def test_concurrent_requests(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    replies: list[int] = []

    def worker(i: int) -> None:
        replies.append(call(gateway, "GET", f"/query-all/jobs/j{i}").status)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert replies == [200] * 20
    assert sorted(e["pathParameters"]["jobId"] for _, e in runtime.events) == sorted(f"j{i}" for i in range(20))


# ---------------------------------------------------------------------------- framing and limits
# What API Gateway itself answers before any function runs: `{"message": ...}` in JSON, promptly,
# whatever the client sends. Each request below once hung the gateway, dropped the connection or
# answered with an HTML page.


@dataclass
class RawReply:
    status: int
    headers: Any
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


def raw_exchange(gw: LocalGateway, request_bytes: bytes, timeout: float = 5.0) -> RawReply:
    """Send ``request_bytes`` without half-closing (a client waiting for its answer) and read the reply."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as sock:
        # The gateway may answer and close before reading everything; the reply still counts.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request_bytes)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return RawReply(response.status, response.headers, body, time.monotonic() - started)


def assert_gateway_error(reply: RawReply, status: int, message: str) -> None:
    assert reply.status == status, (reply.status, reply.body[:200])
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"message": message}
    assert reply.seconds < 3, f"answered after {reply.seconds:.1f} s"


def test_negative_content_length_is_400(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    body = b'{"sql": "SELECT 1"}'
    reply = raw_exchange(
        gateway,
        b"POST /query-all HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + body,
    )
    assert_gateway_error(reply, 400, "Bad Request")
    assert runtime.events == []


@pytest.mark.parametrize("value", [b"abc", b"1e3", b"+5", b"5, 6", b" "])
def test_malformed_content_length_is_400(gateway: LocalGateway, runtime: FakeRuntime, value: bytes) -> None:
    reply = raw_exchange(gateway, b"POST /query-all HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n{}")
    assert_gateway_error(reply, 400, "Bad Request")
    assert runtime.events == []


def test_conflicting_content_lengths_are_400(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    reply = raw_exchange(
        gateway, b"POST /query-all HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    )
    assert_gateway_error(reply, 400, "Bad Request")
    assert runtime.events == []


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n"],
    ids=["bad-size", "no-terminator", "negative"],
)
def test_malformed_chunks_are_400(gateway: LocalGateway, runtime: FakeRuntime, chunks: bytes) -> None:
    reply = raw_exchange(gateway, b"POST /query-all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert_gateway_error(reply, 400, "Bad Request")
    assert runtime.events == []


def test_request_line_without_version_is_400_at_once(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    # HTTP/0.9 style: no version, no headers, and the client keeps the connection open.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /query-all/jobs\r\n")
        reply = b""
        while chunk := sock.recv(65536):  # the gateway answers and closes
            reply += chunk
        seconds = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:100]
    assert reply.endswith(b'{"message":"Bad Request"}'), reply[-100:]
    assert seconds < 3
    assert runtime.events == []


def test_body_over_ten_megabytes_is_413_as_api_gateway_says(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    limit = 10 * 1024 * 1024
    head = b"POST /query-all HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    reply = raw_exchange(gateway, head % (limit + 1) + b"x" * (limit + 1), timeout=20)
    assert reply.status == 413
    assert reply.body == b'{"message":"Request Entity Too Large"}'  # byte for byte what API Gateway sends
    chunked = b"POST /query-all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"%x\r\n" % (limit + 1) + b"x" * (limit + 1) + b"\r\n0\r\n\r\n"
    reply = raw_exchange(gateway, chunked, timeout=20)
    assert (reply.status, reply.body) == (413, b'{"message":"Request Entity Too Large"}')
    assert runtime.events == []
    # exactly the limit passes
    assert raw_exchange(gateway, head % limit + b"x" * limit, timeout=20).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-H%d: v\r\n" % i for i in range(101)),  # more headers than the gateway takes
        b"X-Big: " + b"a" * 100_000 + b"\r\n",  # one header line longer than any server reads
        b"X-Big: " + b"a" * 11_000 + b"\r\n",  # over API Gateway's 10,240 bytes of request line + headers
    ],
    ids=["101-headers", "100KB-header", "11KB-header"],
)
def test_oversized_headers_are_431_json(gateway: LocalGateway, runtime: FakeRuntime, headers: bytes) -> None:
    reply = raw_exchange(gateway, b"GET /query-all/jobs/j1 HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert_gateway_error(reply, 431, "Request Header Fields Too Large")
    assert runtime.events == []


@pytest.mark.parametrize("length", [11_000, 70_000])
def test_long_request_line_is_414_json(gateway: LocalGateway, runtime: FakeRuntime, length: int) -> None:
    reply = raw_exchange(gateway, b"GET /query-all/jobs/" + b"a" * length + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_gateway_error(reply, 414, "URI Too Long")
    assert runtime.events == []


def test_headers_within_api_gateway_limit_pass(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    reply = raw_exchange(gateway, b"GET /query-all/jobs/j1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9_000 + b"\r\n\r\n")
    assert reply.status == 200
    assert runtime.last[1]["headers"]["x-big"] == "a" * 9_000


@pytest.mark.parametrize("method", [b"TRACE", b"CONNECT", b"FOO", b"get"])
def test_unknown_method_is_json(gateway: LocalGateway, runtime: FakeRuntime, method: bytes) -> None:
    # HTTP APIs route GET, POST, PUT, PATCH, DELETE, HEAD and OPTIONS (ANY means those); no other
    # method reaches a function, not even through $default.
    reply = raw_exchange(gateway, method + b" /query-all/jobs/j1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_gateway_error(reply, 400, "Bad Request")
    assert runtime.events == []


def test_raw_space_in_query_string_is_400_json(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    reply = raw_exchange(gateway, b"GET /query-all/jobs?status=a b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_gateway_error(reply, 400, "Bad Request")
    assert runtime.events == []


def test_truncated_body_is_400_when_the_client_gives_up(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /query-all HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert (response.status, json.loads(response.read())) == (400, {"message": "Bad Request"})
    assert runtime.events == []


def test_every_connection_is_answered_after_bad_requests(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    for _ in range(3):
        raw_exchange(gateway, b"POST /query-all HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert call(gateway, "GET", "/query-all/jobs/j1").status == 200


def test_expect_100_continue_gets_one_interim_reply(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /query-all HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ") and b"100 Continue" not in reply
    assert runtime.last[1]["body"] == "{}"


def test_chunk_extensions_and_blank_lines_before_the_request(gateway: LocalGateway, runtime: FakeRuntime) -> None:
    # Both are valid HTTP/1.1 (RFC 9112, 7.1.1 and 2.2); neither may drop the connection.
    reply = raw_exchange(
        gateway,
        b"\r\nPOST /query-all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n0\r\n\r\n",
    )
    assert reply.status == 200
    assert runtime.last[1]["body"] == "hello"
