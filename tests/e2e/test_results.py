"""Results that never lose rows, over real HTTP on the local stack: the poll's compressed prefix, every
page of the full result, Arrow, and the JSON/Arrow/CSV/Parquet downloads, each compared with DuckDB run
directly on every tenant file (combined in bucket order)."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from queryall.logic.paging import encode_cursor
from queryall.models.results import CompletedJobResponse, JobStateResponse, ResultsPageResponse
from tests.conftest import ROOT, Api
from tests.e2e.test_query_all import tenant_files

pytestmark = pytest.mark.timeout(180)

# 500 rows per tenant, values that differ per tenant: about 2.3 MB of JSON over 100 tenants.
WIDE_SQL = ("SELECT p.id, p.email, i FROM (SELECT * FROM person ORDER BY id LIMIT 20) p, range(25) t(i) "
            "ORDER BY p.id, i")
# Fewer rows, more types: a struct holding a list, TIMESTAMPTZ, DECIMAL, NULL, unicode, BLOB.
TYPED_SQL = ("SELECT id, kind, occurred_at, properties, NULL::VARCHAR AS nothing, 'é😀 ' || kind AS uni, "
             "(id * 1.5)::DECIMAL(10, 2) AS amount, encode(kind)::BLOB AS raw FROM event ORDER BY id LIMIT 5")


@dataclass
class Run:
    job_id: str
    poll: dict
    expected: pa.Table  # DuckDB run directly on every tenant file, `_bucket` first, in bucket order


def _direct(tenants_dir: Path, sql: str) -> pa.Table:
    tables = []
    for bucket, path in tenant_files(tenants_dir).items():
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute("SET TimeZone='UTC'")
            table = con.execute(sql).to_arrow_table()
        tables.append(table.add_column(0, "_bucket", pa.array([bucket] * table.num_rows, pa.string())))
    return pa.concat_tables(tables)


def _rows(table: pa.Table) -> list[list]:
    return [list(row.values()) for row in table.to_pylist()]


def _fetch(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url  # moto's presigned URL on loopback
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _csv_field(value: object) -> str:
    """The documented CSV text of a JSON value (parsed with Decimal for exact numbers)."""
    if value is None:
        return ""
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _run(api: Api, tenants_dir: Path, sql: str) -> Run:
    job_id = api.submit({"sql": sql})
    return Run(job_id, api.wait(job_id), _direct(tenants_dir, sql))


@pytest.fixture(scope="module")
def wide(api: Api, tenants_dir: Path) -> Run:
    return _run(api, tenants_dir, WIDE_SQL)


@pytest.fixture(scope="module")
def typed(api: Api, tenants_dir: Path) -> Run:
    return _run(api, tenants_dir, TYPED_SQL)


def _pages(api: Api, job_id: str, query: str) -> list[dict]:
    pages, cursor = [], None
    while True:
        suffix = query + (f"&cursor={cursor}" if cursor else "")
        result = api.request("GET", f"/query-all/jobs/{job_id}/results?{suffix}")
        assert result.status == 200, result.body
        ResultsPageResponse.model_validate(result.body)
        pages.append(result.body)
        cursor = result.body["meta"]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100


def test_poll_holds_a_compressed_prefix_with_schema_and_links(wide: Run, tenants_dir: Path) -> None:
    body = wide.poll
    CompletedJobResponse.model_validate(body)
    meta = body["meta"]
    expected = _rows(wide.expected)
    assert meta["total_rows"] == len(expected) == 500 * len(tenant_files(tenants_dir))
    assert meta["schema"] == [{"name": "_bucket", "type": "VARCHAR"}, {"name": "id", "type": "BIGINT"},
                              {"name": "email", "type": "VARCHAR"}, {"name": "i", "type": "BIGINT"}]
    rows = body["data"]["rows"]
    assert meta["returned_rows"] == len(rows) > 0
    assert rows == expected[: len(rows)]
    # About 2.4 MB of rows: far past 400 KB as plain JSON, yet the compressed item holds every one of them.
    assert len(json.dumps(rows)) > 2_000_000
    assert len(rows) == len(expected) and meta["truncated"] is False and meta["next_cursor"] is None
    assert json.loads(_fetch(meta["result_url"])) == {"columns": body["data"]["columns"], "rows": expected}


def test_every_row_is_reachable_by_paging_once(api: Api, wide: Run) -> None:
    pages = _pages(api, wide.job_id, "page_size=7000")
    expected = _rows(wide.expected)
    assert len(pages) == -(-len(expected) // 7000)
    offset, seen = 0, []
    for page in pages:
        assert page["meta"]["offset"] == offset
        assert page["meta"]["returned_rows"] == len(page["data"]["rows"])
        assert page["meta"]["total_rows"] == len(expected)
        assert page["data"]["columns"] == ["_bucket", "id", "email", "i"]
        offset += len(page["data"]["rows"])
        seen.extend(page["data"]["rows"])
    # Same rows, same order, none twice, none missing.
    assert seen == expected
    # Without page_size: 1,000 rows; a poll's next_cursor continues a page walk too.
    first = api.request("GET", f"/query-all/jobs/{wide.job_id}/results").body
    assert first["data"]["rows"] == expected[:1000] and first["meta"]["truncated"] is True
    later = api.request("GET", f"/query-all/jobs/{wide.job_id}/results?cursor={encode_cursor(wide.job_id, 49_990)}")
    assert later.body["data"]["rows"] == expected[49_990:51_000]


def test_arrow_pages_and_download_decode_to_what_duckdb_returns(api: Api, wide: Run) -> None:
    pages = _pages(api, wide.job_id, "format=arrow&page_size=10000")
    tables = [pa.ipc.open_stream(base64.b64decode(page["data"]["result"])).read_all() for page in pages]
    for page, table in zip(pages, tables, strict=True):
        assert page["meta"]["returned_rows"] == table.num_rows
        assert page["data"]["summary"]["sql"] == WIDE_SQL and page["data"]["summary"]["total_rows"] == 50_000
    combined = pa.concat_tables(tables)
    assert combined.schema == wide.expected.schema
    assert combined.equals(wide.expected)
    poll = api.request("GET", f"/query-all/jobs/{wide.job_id}?format=arrow").body
    CompletedJobResponse.model_validate(poll)
    head = pa.ipc.open_stream(base64.b64decode(poll["data"]["result"])).read_all()
    assert head.num_rows == poll["meta"]["returned_rows"] > 0
    assert head.equals(wide.expected.slice(0, head.num_rows))
    with pa.ipc.open_file(pa.BufferReader(_fetch(poll["meta"]["result_url"]))) as reader:
        assert reader.read_all().equals(wide.expected)


def test_csv_and_parquet_downloads_equal_duckdb(api: Api, wide: Run) -> None:
    expected = _rows(wide.expected)
    csv_url = api.request("GET", f"/query-all/jobs/{wide.job_id}?format=csv").body["meta"]["result_url"]
    lines = list(csv.reader(io.StringIO(_fetch(csv_url).decode("utf-8"), newline="")))
    assert lines[0] == ["_bucket", "id", "email", "i"]
    assert lines[1:] == [[str(value) for value in row] for row in expected]
    page = api.request("GET", f"/query-all/jobs/{wide.job_id}/results?format=parquet&page_size=5").body
    assert page["data"]["rows"] == expected[:5]
    parquet = pq.read_table(io.BytesIO(_fetch(page["meta"]["result_url"])))
    assert _rows(parquet) == expected


def test_every_type_survives_every_format(api: Api, typed: Run) -> None:
    expected = typed.expected
    assert typed.poll["meta"]["total_rows"] == expected.num_rows > 0
    assert [c["type"] for c in typed.poll["meta"]["schema"]] == [
        "VARCHAR", "BIGINT", "VARCHAR", "TIMESTAMP WITH TIME ZONE",
        "STRUCT(\"source\" VARCHAR, duration_ms INTEGER, tags VARCHAR[])", "VARCHAR", "VARCHAR", "DECIMAL(10,2)",
        "BLOB"]
    arrow = pa.concat_tables(
        pa.ipc.open_stream(base64.b64decode(p["data"]["result"])).read_all()
        for p in _pages(api, typed.job_id, "format=arrow&page_size=77"))
    assert arrow.equals(expected)
    json_rows = [row for p in _pages(api, typed.job_id, "page_size=50") for row in p["data"]["rows"]]
    assert json_rows == typed.poll["data"]["rows"]  # pages render exactly what the item holds
    assert json_rows[0][3].endswith("+00") and json_rows[0][8] == base64.b64encode(expected["raw"][0].as_py()).decode()
    assert json_rows[0][7] == Decimal(str(expected["amount"][0].as_py()))
    meta = {fmt: api.request("GET", f"/query-all/jobs/{typed.job_id}?format={fmt}").body["meta"]
            for fmt in ("csv", "parquet")}
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        con.register("expected", expected)
        parquet = pq.read_table(io.BytesIO(_fetch(meta["parquet"]["result_url"])))
        con.register("parquet", parquet)
        as_text = "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM "
        assert con.execute(as_text + "parquet").fetchall() == con.execute(as_text + "expected").fetchall()
    # CSV: each field is the JSON value, JSON strings unquoted, nested values as JSON, NULL empty.
    lines = list(csv.reader(io.StringIO(_fetch(meta["csv"]["result_url"]).decode("utf-8"), newline="")))
    assert lines[1:] == [[_csv_field(value) for value in row] for row in json_rows]


def test_a_truncated_poll_continues_by_pages_cut_to_the_response_size(api: Api, tenants_dir: Path) -> None:
    # ~20,000 rows of ~550 bytes: past the poll's 5 MB bound, and 10,000-row pages must be cut by bytes.
    sql = "SELECT id, email, repeat(md5(email), 16) AS padding FROM person ORDER BY id"
    job_id = api.submit({"sql": sql, "limit": 10_000})
    poll = api.wait(job_id)
    expected = _direct(tenants_dir, sql)
    rows, meta = poll["data"]["rows"], poll["meta"]
    assert meta["truncated"] is True and 0 < len(rows) == meta["returned_rows"] < expected.num_rows
    assert rows == _rows(expected.slice(0, len(rows)))
    assert meta["next_cursor"] == encode_cursor(job_id, len(rows))
    pages, cursor = [], meta["next_cursor"]
    while cursor:
        page = api.request("GET", f"/query-all/jobs/{job_id}/results?page_size=10000&cursor={cursor}").body
        assert len(json.dumps(page)) < 5_000_000
        pages.append(page)
        cursor = page["meta"]["next_cursor"]
    assert any(0 < p["meta"]["returned_rows"] < min(10_000, p["meta"]["total_rows"] - p["meta"]["offset"])
               for p in pages), "no page was cut by bytes"
    assert rows + [row for p in pages for row in p["data"]["rows"]] == _rows(expected)
    arrow = api.request("GET", f"/query-all/jobs/{job_id}?format=arrow").body
    head = pa.ipc.open_stream(base64.b64decode(arrow["data"]["result"])).read_all()
    assert 0 < head.num_rows == arrow["meta"]["returned_rows"] <= len(rows)
    assert head.equals(expected.slice(0, head.num_rows))


def test_results_route_errors(api: Api, wide: Run, local_stack) -> None:
    base = f"/query-all/jobs/{wide.job_id}/results"
    other_job = encode_cursor(str(uuid.uuid4()), 5)
    for query, needle in [("cursor=garbage!", "cursor"), (f"cursor={other_job}", "another job"),
                          (f"cursor={encode_cursor(wide.job_id, 50_001)}", "past the end"),
                          ("page_size=0", "page_size"), ("page_size=10001", "page_size"), ("format=xml", "format")]:
        result = api.request("GET", f"{base}?{query}")
        assert result.status == 400, (query, result.body)
        assert result.body["error"]["code"] == "invalid_request" and needle in result.body["error"]["message"]
    assert api.request("GET", f"/query-all/jobs/{wide.job_id}?format=xml").status == 400
    assert api.request("GET", base, api_key=None).status == 401
    assert api.request("GET", f"/query-all/jobs/{uuid.uuid4()}/results").body["error"]["code"] == "not_found"

    failed = api.run({"question": "how many people?"})
    JobStateResponse.model_validate(failed)
    conflict = api.request("GET", f"/query-all/jobs/{failed['data']['job_id']}/results")
    assert conflict.status == 409 and conflict.body["error"]["code"] == "conflict"
    assert "failed" in conflict.body["error"]["message"]

    job_id = api.submit({"sql": "SELECT 1 AS one"})
    api.wait(job_id)
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.moto_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    dynamodb.update_item(TableName=local_stack.dynamodb_table_name, Key={"job_id": {"S": job_id}},
                         UpdateExpression="SET expires_at = :past",
                         ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
    assert api.request("GET", f"/query-all/jobs/{job_id}/results").status == 404


def test_openapi_document_is_served_and_matches_docs(api: Api) -> None:
    served = api.request("GET", "/openapi.json")
    assert served.status == 200
    assert served.body == json.loads((ROOT / "docs" / "openapi.json").read_text(), parse_float=Decimal)
    assert "/query-all/jobs/{jobId}/results" in served.body["paths"]
    assert api.request("GET", "/openapi.json", api_key=None).status == 401
