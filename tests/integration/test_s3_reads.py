"""Plain S3 object reads over HTTP (what DuckDB's httpfs sends for a tenant database) are answered by
the local stack straight from moto's S3 backend (`queryall_local.s3_reads`): each answer must be the
one moto gives with that path off, and everything else must still reach moto."""

from __future__ import annotations

import http.client
import re
import urllib.parse

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from queryall_local import s3_reads

BUCKET = "plain-reads-probe"
BODY = bytes(range(256)) * 40  # 10,240 bytes, every offset distinguishable
# Headers that differ between any two answers (a request id, the time of the answer).
_VARYING = {"date", "x-amz-request-id", "x-amzn-requestid", "x-amz-id-2", "connection", "keep-alive",
            "transfer-encoding"}


@pytest.fixture(scope="module")
def moto(local_stack):
    s3 = local_stack.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="tenants/warehouse_a.duckdb", Body=BODY, ContentType="application/octet-stream",
                  Metadata={"origin": "probe"})
    s3.create_bucket(Bucket=BUCKET + "-versioned")
    s3.put_bucket_versioning(Bucket=BUCKET + "-versioned", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET + "-versioned", Key="k", Body=BODY)
    return local_stack.moto


def _request(moto, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """A SigV4-signed request over HTTP, as DuckDB's httpfs sends it (path style, header signature)."""
    request = AWSRequest(method=method, url=moto.url + path, headers=headers or {})
    SigV4Auth(boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").get_credentials(),
              "s3", "us-east-1").add_auth(request)
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(moto.url).netloc, timeout=30)
    try:
        connection.request(method, path, headers=dict(request.headers.items()))
        response = connection.getresponse()
        # The request's ids differ in any two answers.
        body = re.sub(rb"<(RequestId|HostId)>[^<]*</(RequestId|HostId)>", b"", response.read())
        answer = {name.lower(): value for name, value in response.getheaders() if name.lower() not in _VARYING}
        return response.status, answer, body
    finally:
        connection.close()


def _both(moto, monkeypatch, method: str, path: str, headers: dict[str, str] | None = None):
    """The answer with plain reads on (and whether they answered it) and with them off (moto's)."""
    answered = []
    real = s3_reads.answer

    def counting(*args, **kwargs):
        result = real(*args, **kwargs)
        answered.append(result is not None)
        return result

    monkeypatch.setattr(s3_reads, "answer", counting)
    fast = _request(moto, method, path, headers)
    moto.plain_s3_reads = False
    try:
        slow = _request(moto, method, path, headers)
    finally:
        moto.plain_s3_reads = True
    return fast, any(answered), slow


PLAIN = [
    ("HEAD", {}),
    ("GET", {}),
    ("GET", {"Range": "bytes=0-99"}),
    ("GET", {"Range": "bytes=4096-8191"}),
    ("GET", {"Range": "bytes=10000-"}),
    ("GET", {"Range": "bytes=10000-99999"}),  # past the end: cut at the end, as S3 does
    ("HEAD", {"Range": "bytes=5-9"}),
]


@pytest.mark.parametrize(("method", "headers"), PLAIN, ids=[f"{m} {h}" for m, h in PLAIN])
def test_a_plain_read_is_answered_as_moto_answers_it(moto, monkeypatch, method, headers) -> None:
    fast, answered, slow = _both(moto, monkeypatch, method, f"/{BUCKET}/tenants/warehouse_a.duckdb", headers)
    assert answered, "the plain read went to moto"
    assert fast[0] == slow[0] and fast[2] == slow[2]
    assert fast[1] == slow[1], sorted(set(fast[1].items()) ^ set(slow[1].items()))
    status, answer, body = fast
    if method == "GET":
        start = int(headers["Range"].split("=")[1].split("-")[0]) if headers else 0
        assert body == BODY[start:start + len(body)] and len(body) == int(answer["content-length"])
        assert status == (206 if headers else 200)
    assert answer["x-amz-meta-origin"] == "probe"


OTHERS = [
    ("GET", f"/{BUCKET}/tenants/missing.duckdb", {}),  # 404 NoSuchKey
    ("HEAD", f"/{BUCKET}/tenants/warehouse_a.duckdb.wal", {}),  # 404, as DuckDB's WAL check gets
    ("GET", f"/{BUCKET}/tenants/warehouse_a.duckdb", {"Range": "bytes=20000-"}),  # 416
    ("GET", f"/{BUCKET}/tenants/warehouse_a.duckdb", {"Range": "bytes=-100"}),  # a suffix range
    ("GET", f"/{BUCKET}/tenants/warehouse_a.duckdb", {"If-None-Match": "anything"}),
    ("GET", f"/{BUCKET}/tenants/warehouse_a.duckdb?tagging", {}),
    ("GET", f"/{BUCKET}-versioned/k", {}),
    ("GET", f"/{BUCKET}-missing/k", {}),
]


@pytest.mark.parametrize(("method", "path", "headers"), OTHERS, ids=[f"{m} {p} {h}" for m, p, h in OTHERS])
def test_anything_else_is_moto_s_to_answer(moto, monkeypatch, method, path, headers) -> None:
    fast, answered, slow = _both(moto, monkeypatch, method, path, headers)
    assert not answered
    assert fast[0] == slow[0] and fast[2] == slow[2]


def test_each_plain_read_is_counted_once(moto) -> None:
    before = moto.request_counts["s3"]
    for _ in range(3):
        _request(moto, "GET", f"/{BUCKET}/tenants/warehouse_a.duckdb", {"Range": "bytes=0-9"})
    _request(moto, "HEAD", f"/{BUCKET}/tenants/missing.duckdb")  # declined after counting: still once
    assert moto.request_counts["s3"] - before == 4
