"""Tenant backends, the table catalog and isolation over real HTTP on the local stack.

- the attack corpus: each query refused at submit (400) or stopped where it runs, never reading another
  tenant or anything else; every tenant file byte-identical afterwards;
- the catalog: refresh (admin only), GET /query-all/databases, "Unknown table" at submit, tenants
  lacking the table skipped without being opened, and correct answers when the catalog is stale;
- the S3 backend on moto's S3 server, read by DuckDB's real httpfs extension: the same combined result
  as the folder backend for the same tenants.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from queryall.dal.tenant_databases import S3TenantDatabases
from queryall.logic import query_workers
from queryall.logic.query_workers import run_batch
from queryall.settings import reset_caches
from tests.attack_corpus import CORPUS
from tests.conftest import CORRUPT_BUCKET, Api
from tests.tenant_data import direct, has_table, tenant_files

pytestmark = pytest.mark.timeout(300)


def checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}





@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Change the functions' environment for a while, as a redeploy would (the stack shares os.environ)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    reset_caches()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_caches()


@pytest.fixture(scope="module")
def before(tenants_dir: Path) -> dict[str, str]:
    return checksums(tenants_dir)


@pytest.fixture(scope="module")
def admin(local_stack, before: dict[str, str]) -> Api:
    return Api(local_stack.url, local_stack.admin_api_key)


def refresh(admin: Api, local_stack) -> dict:
    result = admin.request("POST", "/query-all/catalog/refresh")
    assert result.status == 202, result.body
    assert result.body == {"data": {"status": "refreshing"}}
    local_stack.runtime.wait_for_background(timeout=120)
    return admin.request("GET", "/query-all/databases?limit=1").body["meta"]


@pytest.fixture(scope="module")
def catalog(admin: Api, local_stack) -> dict:
    return refresh(admin, local_stack)


# ----------------------------------------------------------------------------- the attack corpus


def render(sql: str, tenants_dir: Path, own: str, other: str) -> str:
    return (sql.replace("{other}", str(tenants_dir / f"warehouse_{other}.duckdb"))
            .replace("{own}", str(tenants_dir / f"warehouse_{own}.duckdb"))
            .replace("{other_db}", f"warehouse_{other}").replace("{dir}", str(tenants_dir)))


@pytest.mark.parametrize(("name", "sql", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_query_over_http(name: str, sql: str, expected: str, api: Api, tenants_dir: Path,
                                 before: dict[str, str]) -> None:
    files = tenant_files(tenants_dir)
    own, other = list(files)[:2]
    sql = render(sql, tenants_dir, own, other)
    buckets = [own] if expected == "error" else [own, other]
    with environment(QUERY_TIMEOUT_SECONDS="2", QUERY_MEMORY_LIMIT_MB="256"):
        result = api.request("POST", "/query-all", {"sql": sql, "buckets": buckets, "limit": 100})
        if expected in ("rejected", "too_large"):
            assert result.status == 400, result.body
            code = "invalid_sql" if expected == "rejected" else "invalid_request"
            assert result.body["error"]["code"] == code and result.body["error"]["message"]
            return
        assert result.status == 202, result.body
        body = api.wait(result.body["data"]["job_id"], timeout=120)
    meta = body["meta"]
    if expected == "error":
        assert body["data"]["rows"] == [] and list(meta["errors"]) == [own], body
        return
    assert meta["errors"] == {} and meta["databases_queried"] == 2, meta
    assert body["data"]["rows"] == [[b, *row] for b in buckets for row in direct(files[b], sql)]


def test_tenant_files_unchanged_by_the_corpus(tenants_dir: Path, before: dict[str, str]) -> None:
    assert checksums(tenants_dir) == before


# ----------------------------------------------------------------------------- the catalog


def test_refresh_is_for_admin_keys_only(api: Api, admin: Api) -> None:
    assert api.request("POST", "/query-all/catalog/refresh").status == 403
    assert api.request("POST", "/query-all/catalog/refresh").body == {
        "error": {"code": "forbidden", "message": "This route needs an admin API key"}}
    assert api.request("POST", "/query-all/catalog/refresh", api_key=None).status == 401
    assert api.request("POST", "/query-all/catalog/refresh", api_key="wrong").status == 401


def test_databases_lists_every_tenant_with_its_tables_page_by_page(api: Api, tenants_dir: Path,
                                                                   catalog: dict) -> None:
    listed, cursor, pages = [], None, 0
    while True:
        page = api.request("GET", "/query-all/databases?limit=30" + (f"&cursor={cursor}" if cursor else ""))
        assert page.status == 200, page.body
        listed += page.body["data"]
        pages += 1
        cursor = page.body["meta"]["next_cursor"]
        if cursor is None:
            break
    files = tenant_files(tenants_dir)
    assert [d["bucket"] for d in listed] == sorted([*files, CORRUPT_BUCKET]) and pages >= 4
    by_bucket = {d["bucket"]: d for d in listed}
    first = next(iter(files))
    tables = {t["name"]: [(c["name"], c["type"]) for c in t["columns"]] for t in by_bucket[first]["tables"]}
    expected = direct(files[first], "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                                    "WHERE database_name = current_database() ORDER BY table_name, column_index")
    assert tables == {t: [(c, k) for tt, c, k in expected if tt == t] for t, _, _ in expected}
    assert "Could not open database" in by_bucket[CORRUPT_BUCKET]["error"]
    assert {"person", "payment", "membership", "event"} <= set(catalog["tables"])
    assert api.request("GET", "/query-all/databases?cursor=bm90IGEgYnVja2V0IQ").status == 400


def test_unknown_table_is_404_at_submit(api: Api, catalog: dict) -> None:
    result = api.request("POST", "/query-all", {"sql": "SELECT 1", "table": "foo"})
    assert result.status == 404
    assert result.body == {"error": {"code": "not_found", "message": "Unknown table: foo"}}
    assert api.request("POST", "/query-all", {"sql": "SELECT 1", "table": "PAYMENT"}).status == 202


def test_tenants_lacking_the_table_are_skipped_without_being_opened(api: Api, local_stack, tenants_dir: Path,
                                                                    catalog: dict) -> None:
    files = tenant_files(tenants_dir)
    lacking = sorted(b for b, p in files.items() if not has_table(p, "payment"))
    plan = local_stack.runtime.invoke("PlanTargetsFunction", {
        "job_id": "00000000-0000-4000-8000-000000000000", "submitted_at": 0, "sql": "SELECT 1", "limit": 1,
        "table": "payment"})
    planned = {b for batch in plan["batches"] for b in batch["buckets"]}
    assert lacking and sorted(plan["skipped"]) == lacking and not planned & set(lacking)
    assert CORRUPT_BUCKET in planned  # unreadable at refresh: still checked where it runs
    body = api.run({"sql": "SELECT count(*) AS n FROM payment", "table": "payment"})
    assert body["meta"]["skipped"] == lacking and body["meta"]["databases_skipped"] == len(lacking)
    assert [r[0] for r in body["data"]["rows"]] == sorted(set(files) - set(lacking)), body["meta"]


def test_a_stale_or_missing_catalog_entry_falls_back_to_checking_the_tenant(
    api: Api, admin: Api, local_stack, tenants_dir: Path, catalog: dict
) -> None:
    files = tenant_files(tenants_dir)
    lacking = sorted(b for b, p in files.items() if not has_table(p, "payment"))
    having = sorted(set(files) - set(lacking))
    dynamodb = local_stack.client("dynamodb")
    table = local_stack.spec.tables["CatalogTable"].name
    try:
        # A tenant the catalog has never seen (a new file), and one whose file changed since (stale):
        # the first lacks the table, the second now "has" it according to a wrong entry.
        dynamodb.delete_item(TableName=table, Key={"pk": {"S": "tenant"}, "sk": {"S": lacking[0]}})
        dynamodb.update_item(TableName=table, Key={"pk": {"S": "tenant"}, "sk": {"S": lacking[1]}},
                             UpdateExpression="SET #e = :e", ExpressionAttributeNames={"#e": "entry"},
                             ExpressionAttributeValues={":e": {"S": json.dumps({
                                 "bucket": lacking[1], "database": f"warehouse_{lacking[1]}", "version": "old",
                                 "tables": [], "refreshed_at": "2020-01-01T00:00:00.000Z"})}})
        body = api.run({"sql": "SELECT count(*) AS n FROM payment", "table": "payment"})
        assert body["meta"]["skipped"] == lacking, body["meta"]
        assert [r[0] for r in body["data"]["rows"]] == having
    finally:
        refresh(admin, local_stack)


# ----------------------------------------------------------------------------- the S3 backend


def test_s3_backend_gives_the_same_result_as_the_folder(api: Api, admin: Api, local_stack, tenants_dir: Path,
                                                        catalog: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    files = tenant_files(tenants_dir)
    chosen = [*list(files)[:14], CORRUPT_BUCKET]
    s3 = local_stack.client("s3")
    s3.create_bucket(Bucket="tenant-databases")
    for bucket in chosen:
        s3.upload_file(str(tenants_dir / f"warehouse_{bucket}.duckdb"), "tenant-databases",
                       f"warehouse/warehouse_{bucket}.duckdb")
    request = {"sql": "SELECT currency, sum(amount) AS total, count(*) AS n FROM payment GROUP BY ALL ORDER BY ALL",
               "table": "payment", "buckets": [*chosen, "not-uploaded"]}
    folder = api.run(request)
    try:
        with environment(TENANT_DATABASES="s3://tenant-databases/warehouse/warehouse_{bucket}.duckdb"):
            in_s3 = api.run(request)
            described = local_stack.runtime.invoke("RefreshCatalogFunction", {})
            everything = api.run({"sql": "SELECT count(*) AS n FROM person"})
            # Where the query runs (guard bypassed): a downloaded tenant's session opens no S3 path at all,
            # not even its own; a tenant attached over S3 opens its own object and no other.
            downloaded = S3TenantDatabases(os.environ["TENANT_DATABASES"])
            over_s3 = S3TenantDatabases(os.environ["TENANT_DATABASES"], download_max_mb=0)
            monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
            reach = f"SELECT count(*) AS n FROM read_blob('{over_s3.location(chosen[1])}')"
            reached, _ = run_batch(chosen[:2], over_s3, reach, 1, None, 30, memory_limit_mb=256, threads=1)
            reached_downloaded, _ = run_batch(chosen[:2], downloaded, reach, 1, None, 30, memory_limit_mb=256,
                                              threads=1)
    finally:
        refresh(admin, local_stack)
        for bucket in chosen:
            s3.delete_object(Bucket="tenant-databases", Key=f"warehouse/warehouse_{bucket}.duckdb")
        s3.delete_bucket(Bucket="tenant-databases")
    assert in_s3["data"] == folder["data"] and in_s3["data"]["rows"]
    for key in ("databases_queried", "databases_skipped", "databases_errored", "skipped", "total_rows"):
        assert in_s3["meta"][key] == folder["meta"][key], key
    assert set(in_s3["meta"]["errors"]) == set(folder["meta"]["errors"]) == {CORRUPT_BUCKET, "not-uploaded"}
    assert all(Decimal(r[2]) >= 0 for r in in_s3["data"]["rows"])
    assert [(o.status, o.rows) for o in reached] == [("error", 0), ("ok", 1)], reached
    assert "disabled by configuration" in (reached[0].message or "")
    assert [o.status for o in reached_downloaded] == ["error", "error"], reached_downloaded
    assert all("disabled by configuration" in (o.message or "") for o in reached_downloaded)
    # Listing and describing tenants work against S3 too.
    assert described["tenants"] == len(chosen) and described["errors"] == 1
    assert [r[0] for r in everything["data"]["rows"]] == sorted(chosen[:-1])
