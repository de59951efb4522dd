"""Bodies and parameters a hostile client sends, over real HTTP to the local gateway: each gets a 400 in
the error envelope, never a 500 (issue 12, rows 1-3: undecodable bytes, deep nesting, huge integers)."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from tests.conftest import API_KEY


def _send(local_stack, method: str, path: str, body: bytes | None = None,
          content_type: str = "application/json") -> tuple[int, dict]:
    url = urllib.parse.urlsplit(local_stack.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        headers = {"x-api-key": API_KEY, "content-type": content_type}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def _assert_invalid_request(status: int, body: dict) -> None:
    assert status == 400, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == "invalid_request"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def _nested(depth: int, opener: str = "[", closer: str = "]", inner: str = "1") -> str:
    return opener * depth + inner + closer * depth


_NOT_TEXT = {
    "invalid bytes in a string": (b'{"sql":"SELECT \xff\xfe 1"}', "application/json"),
    "utf-16": ('{"sql":"SELECT 1"}'.encode("utf-16"), "application/json"),
    "one byte 0x92": (b"\x92", "application/json"),
    "an escaped lone surrogate": (rb'{"sql":"SELECT \ud800 1"}', "application/json"),
    "declared latin-1": ('{"sql":"SELECT \'é\' AS e"}'.encode("latin-1"), "application/json; charset=latin-1"),
}


@pytest.mark.parametrize("case", sorted(_NOT_TEXT))
def test_a_body_that_is_not_utf8_text_is_a_400(local_stack, case: str) -> None:
    body, content_type = _NOT_TEXT[case]
    _assert_invalid_request(*_send(local_stack, "POST", "/query-all", body, content_type))


_DEEP = {
    "array in sql, 1,000 deep": '{"sql":' + _nested(1_000) + "}",
    "array in sql, 100,000 deep": '{"sql":' + _nested(100_000) + "}",
    "array in buckets, 10,000 deep": '{"sql":"SELECT 1","buckets":' + _nested(10_000) + "}",
    "objects in an unknown field, 5,000 deep": '{"sql":"SELECT 1","x":' + _nested(5_000, '{"a":', "}") + "}",
    "the whole body, 100,000 deep": _nested(100_000),
    "limit, 3,000 deep": '{"sql":"SELECT 1","limit":' + _nested(3_000) + "}",
}


@pytest.mark.parametrize("case", sorted(_DEEP))
def test_deeply_nested_json_in_a_body_is_a_400(local_stack, case: str) -> None:
    _assert_invalid_request(*_send(local_stack, "POST", "/query-all", _DEEP[case].encode()))


# Deeper arrays make a request line past API Gateway's 10,240-byte request head: the gateway's 414.
@pytest.mark.parametrize("depth", [33, 1_000, 1_500])
def test_deeply_nested_job_ids_for_wait_are_a_400(local_stack, depth: int) -> None:
    query = urllib.parse.urlencode({"job_ids": _nested(depth, inner='"x"'), "timeout_seconds": "0"})
    _assert_invalid_request(*_send(local_stack, "GET", f"/query-all/wait?{query}"))


def test_a_limit_of_5001_digits_is_a_400(local_stack) -> None:
    body = '{"sql":"SELECT 1","limit":' + "9" * 5_001 + "}"
    _assert_invalid_request(*_send(local_stack, "POST", "/query-all", body.encode()))


def test_a_huge_number_for_limit_is_a_400(local_stack) -> None:
    for value in ("1" * 5_001, "1e999999", "-" + "7" * 10_000, "0." + "5" * 10_000):
        status, body = _send(local_stack, "POST", "/query-all", ('{"sql":"SELECT 1","limit":' + value + "}").encode())
        _assert_invalid_request(status, body)


@pytest.mark.parametrize("parameter", ["limit", "cursor"])
def test_a_page_parameter_of_5001_digits_is_a_400(local_stack, parameter: str) -> None:
    _assert_invalid_request(*_send(local_stack, "GET", f"/query-all/jobs?{parameter}={'9' * 5_001}"))


def test_a_valid_body_still_submits(local_stack) -> None:
    """The same route, given a good body, is not refused by the checks above."""
    status, body = _send(local_stack, "POST", "/query-all", json.dumps({"sql": "SELECT 'é' AS e"}).encode())
    assert status == 202, body
