"""The whole pipeline over real HTTP: local gateway -> handlers -> moto's Step Functions running the
real definition -> per-tenant DuckDB files -> aggregator -> DynamoDB -> poll."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from tests.conftest import CORRUPT_BUCKET, OTHER_API_KEY, Api
from tests.tenant_data import direct, has_table, tenant_files

pytestmark = pytest.mark.timeout(180)





def test_counts_match_duckdb_run_directly_on_every_tenant(api: Api, tenants_dir: Path) -> None:
    body = api.run({"sql": "SELECT count(*) AS total FROM person"})
    files = tenant_files(tenants_dir)
    assert len(files) >= 20
    expected = [[bucket, direct(path, "SELECT count(*) FROM person")[0][0]] for bucket, path in files.items()]
    assert body["data"]["columns"] == ["_bucket", "total"]
    assert body["data"]["rows"] == expected
    meta = body["meta"]
    assert meta["databases_queried"] == len(files)
    assert meta["databases_errored"] == 1 and CORRUPT_BUCKET in meta["errors"]
    assert "Could not open database" in meta["errors"][CORRUPT_BUCKET]
    # The error names the tenant's own database file, never the sandbox's alias for it.
    assert f"/warehouse_{CORRUPT_BUCKET}.duckdb" in meta["errors"][CORRUPT_BUCKET]
    assert "alias" not in meta["errors"][CORRUPT_BUCKET]
    assert meta["databases_skipped"] == 0 and meta["skipped"] == []
    assert meta["total_rows"] == len(files)
    assert meta["truncated"] is False
    assert 0 < meta["execution_time_seconds"] < 60


def test_group_by_with_table_reports_skipped_tenants(api: Api, tenants_dir: Path) -> None:
    sql = "SELECT currency, sum(amount) AS total, count(*) AS payments FROM payment GROUP BY currency ORDER BY currency"
    body = api.run({"sql": sql, "table": "payment"})
    files = tenant_files(tenants_dir)
    lacking = sorted(b for b, p in files.items() if not has_table(p, "payment"))
    assert lacking, "the seed must leave some tenants without payment"
    assert body["meta"]["skipped"] == lacking
    assert body["meta"]["databases_skipped"] == len(lacking)
    expected = [[bucket, *row] for bucket, path in files.items() if bucket not in lacking
                for row in direct(path, sql)]
    assert body["data"]["columns"] == ["_bucket", "currency", "total", "payments"]
    # DECIMAL sums arrive as exact JSON numbers.
    assert [[b, c, Decimal(t), n] for b, c, t, n in body["data"]["rows"]] == expected, body["meta"]


def test_requested_buckets_and_unknown_bucket(api: Api, tenants_dir: Path) -> None:
    files = tenant_files(tenants_dir)
    first, second = list(files)[:2]
    body = api.run({"sql": "SELECT max(id) AS top FROM person", "buckets": [second, first, "no-such-tenant"]})
    rows = body["data"]["rows"]
    assert rows == sorted([[b, direct(files[b], "SELECT max(id) FROM person")[0][0]] for b in (first, second)])
    assert body["meta"]["databases_errored"] == 1
    assert "no-such-tenant" in body["meta"]["errors"]


def test_limit_applies_per_database(api: Api, tenants_dir: Path) -> None:
    body = api.run({"sql": "SELECT id FROM person ORDER BY id", "limit": 3})
    files = tenant_files(tenants_dir)
    assert body["meta"]["total_rows"] == 3 * len(files)
    first = next(iter(files))
    assert [r[1] for r in body["data"]["rows"][:3]] == [r[0] for r in direct(files[first],
                                                                           "SELECT id FROM person ORDER BY id LIMIT 3")]


def test_result_over_400_kb_is_truncated_with_exact_total(api: Api, tenants_dir: Path) -> None:
    sql = "SELECT id, email, repeat('x', 300) AS padding FROM person ORDER BY id"
    body = api.run({"sql": sql, "limit": 10000})
    files = tenant_files(tenants_dir)
    total = sum(direct(p, "SELECT count(*) FROM person")[0][0] for p in files.values())
    meta = body["meta"]
    assert meta["truncated"] is True
    assert meta["total_rows"] == total
    rows = body["data"]["rows"]
    assert 0 < len(rows) < total
    # The rows kept are the first rows of the combined result: bucket order, then the query's order.
    expected = [[b, *r] for b, p in files.items() for r in direct(p, sql)][: len(rows)]
    assert rows == expected


def test_question_without_generator_fails_with_generation_failed(api: Api) -> None:
    body = api.run({"question": "how many people are there?"})
    data = body["data"]
    assert data["status"] == "failed"
    assert data["error_code"] == "generation_failed"
    assert "no SQL generator is configured" in data["error_message"]


@pytest.mark.parametrize("api_key", [None, "wrong-key", ""])
def test_requests_without_a_valid_key_get_401(api: Api, api_key: str | None) -> None:
    for method, path, body in [("POST", "/query-all", {"sql": "SELECT 1"}),
                               ("GET", f"/query-all/jobs/{uuid.uuid4()}", None)]:
        result = api.request(method, path, body, api_key=api_key)
        assert result.status == 401
        assert result.body == {"error": {"code": "unauthorized", "message": "Authentication required"}}


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "x" * 300])
def test_unknown_or_malformed_job_is_404(api: Api, job_id: str) -> None:
    result = api.request("GET", f"/query-all/jobs/{job_id}")
    assert result.status == 404
    assert result.body["error"]["code"] == "not_found"


def test_expired_job_is_404_even_before_ttl_deletes_it(api: Api, local_stack) -> None:
    job_id = api.submit({"sql": "SELECT 1 AS one"})
    assert api.wait(job_id)["meta"]["total_rows"] > 0
    table = boto3.client("dynamodb", endpoint_url=local_stack.moto_url, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    table.update_item(TableName=local_stack.dynamodb_table_name, Key={"job_id": {"S": job_id}},
                      UpdateExpression="SET expires_at = :past",
                      ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
    result = api.request("GET", f"/query-all/jobs/{job_id}")
    assert result.status == 404
    assert result.body["error"]["code"] == "not_found"


def test_unknown_route_is_404_in_the_envelope(api: Api) -> None:
    result = api.request("GET", "/no/such/route")
    assert result.status == 404
    assert result.body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({"sql": "DELETE FROM person"}, "invalid_sql", "DELETE"),
        ({"sql": "SELECT 1; SELECT 2"}, "invalid_sql", "one statement"),
        ({"sql": "SELEC 1"}, "invalid_sql", "syntax error"),
        ({"sql": "   "}, "invalid_sql", "empty"),
        ({"sql": "SELECT 1", "question": "q"}, "invalid_request", "exactly one"),
        ({}, "invalid_request", "exactly one"),
        ({"sql": "SELECT 1", "limit": 0}, "invalid_request", "limit"),
        ({"sql": "SELECT 1", "limit": 10001}, "invalid_request", "limit"),
        ({"sql": "SELECT 1", "limit": "10"}, "invalid_request", "limit"),
        ({"sql": "SELECT 1", "buckets": []}, "invalid_request", "buckets"),
        ({"sql": "SELECT 1", "buckets": ["../etc"]}, "invalid_request", "buckets"),
        ({"sql": "SELECT 1", "table": "person; drop"}, "invalid_request", "table"),
        ({"sql": "SELECT 1", "unexpected": 1}, "invalid_request", "unexpected"),
    ],
)
def test_bad_submissions_get_400_naming_the_problem(api: Api, body: dict, code: str, needle: str) -> None:
    result = api.request("POST", "/query-all", body)
    assert result.status == 400, result.body
    assert result.body["error"]["code"] == code
    assert needle.lower() in result.body["error"]["message"].lower()


def test_malformed_json_body_is_400(api: Api) -> None:
    result = api.request("POST", "/query-all", raw_body=b"{not json")
    assert result.status == 400
    assert result.body["error"] == {"code": "invalid_request", "message": "Request body is not valid JSON"}


def test_authentication_comes_before_validation(api: Api) -> None:
    result = api.request("POST", "/query-all", raw_body=b"{not json", api_key=None)
    assert result.status == 401


def test_json_body_sent_as_a_form_is_still_read_as_json(api: Api, tenants_dir: Path) -> None:
    request = urllib.request.Request(
        api.base_url + "/query-all", method="POST", data=b'{"sql": "SELECT 42 AS answer", "limit": 1}',
        headers={"content-type": "application/x-www-form-urlencoded", "x-api-key": api.api_key},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        job_id = json.loads(response.read())["data"]["job_id"]
    body = api.wait(job_id)
    assert body["data"]["rows"][0][1] == 42


def test_another_callers_job_reads_as_unknown(api: Api) -> None:
    job_id = api.submit({"sql": "SELECT 1 AS one", "limit": 1})
    api.wait(job_id)
    for path in (f"/query-all/jobs/{job_id}", f"/query-all/jobs/{job_id}/results"):
        result = api.request("GET", path, api_key=OTHER_API_KEY)
        assert result.status == 404, path
        assert result.body["error"] == {"code": "not_found", "message": f"Job not found: {job_id}"}
    assert api.request("GET", f"/query-all/jobs/{job_id}").status == 200
