"""Results cursors and the format / page_size parameters, checked before any job is read."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from queryall.errors import InvalidRequest
from queryall.logic.paging import MAX_CURSOR_LENGTH, decode_cursor, encode_cursor, next_cursor

JOB = "503a73be-9119-43ba-8e30-4f278f978d49"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("offset", [0, 1, 999, 10**17])
def test_cursor_round_trips_and_is_opaque_url_safe_text(offset: int) -> None:
    cursor = encode_cursor(JOB, offset)
    assert decode_cursor(cursor, JOB) == offset
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(cursor) <= MAX_CURSOR_LENGTH


def test_cursor_of_another_job_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="another job"):
        decode_cursor(encode_cursor(str(uuid.uuid4()), 5), JOB)


@pytest.mark.parametrize("cursor", [
    "", "not base64!", "x" * (MAX_CURSOR_LENGTH + 1), "%%%%", "====",
    _b64(f"v2:{JOB}:5"),  # unknown version
    _b64(f"v1:{JOB}:-5"), _b64(f"v1:{JOB}:05"), _b64(f"v1:{JOB}:5.0"), _b64(f"v1:{JOB}:"),
    _b64(f"v1:{JOB}:1{'0' * 18}"),  # absurdly large
    _b64("v1:5"), _b64("garbage"), _b64("\u00e9\u00e9"),
    base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),  # not text
])
def test_malformed_cursors_are_invalid_requests(cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor is not valid"):
        decode_cursor(cursor, JOB)


def test_next_cursor_is_null_after_the_last_row() -> None:
    assert next_cursor(JOB, 0, 10, 10) is None
    assert next_cursor(JOB, 90, 10, 100) is None
    assert decode_cursor(next_cursor(JOB, 90, 5, 100), JOB) == 95


def _event(path: str, query: dict[str, str], path_parameters: dict[str, str]) -> dict:
    return {
        "version": "2.0", "routeKey": "GET " + path, "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in query.items()),
        "queryStringParameters": query, "pathParameters": path_parameters,
        "headers": {}, "isBase64Encoded": False,
        "requestContext": {"http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                                    "userAgent": ""}, "stage": "$default", "requestId": "r", "routeKey": "GET " + path},
    }


@pytest.mark.parametrize(("route", "query", "needle"), [
    ("poll", {"format": "xml"}, "format"),
    ("poll", {"format": "JSON"}, "format"),
    ("results", {"format": "ndjson"}, "format"),
    ("results", {"page_size": "0"}, "page_size"),
    ("results", {"page_size": "10001"}, "page_size"),
    ("results", {"page_size": "ten"}, "page_size"),
    ("results", {"cursor": "x" * (MAX_CURSOR_LENGTH + 1)}, "cursor"),
])
def test_bad_parameters_are_400_before_the_job_is_read(route: str, query: dict[str, str], needle: str) -> None:
    from queryall.handlers import poll, results

    module = {"poll": poll, "results": results}[route]
    path = f"/query-all/jobs/{JOB}" + ("/results" if route == "results" else "")
    # Straight to the resolver (authentication is resolve()'s job): validation answers before the route
    # runs, so no table, bucket or settings are needed.
    module.app.append_context(caller="key:test")
    response = module.app.resolve(_event(path, query, {"jobId": JOB}), None)
    assert response["statusCode"] == 400
    error = json.loads(response["body"])["error"]
    assert error["code"] == "invalid_request" and needle in error["message"]


def test_result_urls_never_outlive_the_job() -> None:
    from queryall.logic.result_links import ResultLinks
    from queryall.models.job import Job, JobRequest, JobStatus
    from queryall.models.result_format import ResultFormat

    class Store:
        def presigned_url(self, job_id: str, result_format: str, expires_in: int) -> str:
            return f"{job_id}/{result_format}/{expires_in}"

    job = Job(job_id=JOB, status=JobStatus.COMPLETED, owner="o", created_at="t", submitted_at=0, expires_at=10_000,
              request=JobRequest(sql="SELECT 1", limit=1))
    assert ResultLinks(Store(), 900, now=1_000).url(job, ResultFormat.CSV) == f"{JOB}/csv/900"
    assert ResultLinks(Store(), 900, now=9_700).url(job, ResultFormat.PARQUET) == f"{JOB}/parquet/300"
    assert ResultLinks(Store(), 900, now=9_999.5).url(job, ResultFormat.ARROW) == f"{JOB}/arrow/1"
