"""S3 tenants up to TENANT_DOWNLOAD_MAX_MB are read with one GET (plus one for a WAL) into the query
worker's alias folder; larger ones, and every tenant with 0, are attached over S3 as before. Counted
where the local stack's moto serves them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from queryall.dal.tenant_databases import S3TenantDatabases
from queryall.logic.query_workers import run_batch
from tests.conftest import CORRUPT_BUCKET

pytestmark = pytest.mark.timeout(600)
S3_BUCKET = "downloaded-tenants"
SQL = "SELECT count(*) AS n, sum(id) AS ids FROM person"


@pytest.fixture(scope="module")
def uploaded(local_stack, tenants_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three tenants as they are, and one whose last rows are only in its WAL."""
    buckets = sorted(p.name.removeprefix("warehouse_").removesuffix(".duckdb")
                     for p in tenants_dir.glob("warehouse_*.duckdb") if CORRUPT_BUCKET not in p.name)[:3]
    with_wal = tmp_path_factory.mktemp("wal") / "warehouse_walled.duckdb"
    with duckdb.connect(str(with_wal)) as con:
        con.execute("CREATE TABLE person AS SELECT range AS id FROM range(100)")
        con.execute("CHECKPOINT")
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute("INSERT INTO person SELECT range FROM range(100, 150)")  # kept in the WAL alone
    assert Path(str(with_wal) + ".wal").stat().st_size > 0
    s3 = local_stack.client("s3")
    s3.create_bucket(Bucket=S3_BUCKET)
    keys = [f"warehouse_{b}.duckdb" for b in buckets] + ["warehouse_walled.duckdb", "warehouse_walled.duckdb.wal"]
    for bucket in buckets:
        s3.upload_file(str(tenants_dir / f"warehouse_{bucket}.duckdb"), S3_BUCKET, f"warehouse_{bucket}.duckdb")
    s3.upload_file(str(with_wal), S3_BUCKET, "warehouse_walled.duckdb")
    s3.upload_file(str(with_wal) + ".wal", S3_BUCKET, "warehouse_walled.duckdb.wal")
    expected = {}
    for bucket in buckets:
        with duckdb.connect(str(tenants_dir / f"warehouse_{bucket}.duckdb"), read_only=True) as con:
            expected[bucket] = con.execute(SQL).fetchone()
    expected["walled"] = (150, sum(range(150)))
    try:
        yield f"s3://{S3_BUCKET}/warehouse_{{bucket}}.duckdb", [*buckets, "walled"], expected
    finally:
        for key in keys:
            s3.delete_object(Bucket=S3_BUCKET, Key=key)
        s3.delete_bucket(Bucket=S3_BUCKET)


def _run(local_stack, backend: S3TenantDatabases, buckets: list[str]):
    before = local_stack.moto.request_counts["s3"]
    outcomes, tables = run_batch(buckets, backend, SQL, 100, None, 30, memory_limit_mb=256, threads=1)
    rows = {r["_bucket"]: (int(r["n"]), int(r["ids"])) for t in tables for r in t.to_pylist()}
    return outcomes, rows, local_stack.moto.request_counts["s3"] - before


def test_a_small_tenant_is_two_requests_and_its_wal_is_read(local_stack, uploaded) -> None:
    template, buckets, expected = uploaded
    outcomes, rows, requests = _run(local_stack, S3TenantDatabases(template), buckets)
    assert [o.status for o in outcomes] == ["ok"] * 4, outcomes
    assert rows == expected
    assert requests == 2 * len(buckets)  # each: GET the object, GET its WAL (present once, 404 otherwise)


def test_over_s3_the_same_rows_take_dozens_of_requests(local_stack, uploaded) -> None:
    template, buckets, expected = uploaded
    outcomes, rows, requests = _run(local_stack, S3TenantDatabases(template, download_max_mb=0), buckets)
    assert [o.status for o in outcomes] == ["ok"] * 4, outcomes
    assert rows == expected
    assert requests >= 10 * len(buckets)


def test_a_tenant_larger_than_the_limit_is_attached_over_s3(local_stack, uploaded) -> None:
    template, buckets, expected = uploaded
    backend = S3TenantDatabases(template)
    backend.download_max_bytes = 1000  # every test tenant is larger
    outcomes, rows, requests = _run(local_stack, backend, buckets[:1])
    assert [o.status for o in outcomes] == ["ok"] and rows == {buckets[0]: expected[buckets[0]]}
    assert requests >= 10  # the GET given up on its Content-Length, then DuckDB's requests


def test_a_wal_larger_than_the_limit_sends_its_tenant_over_s3(local_stack, tmp_path: Path) -> None:
    """A database within the limit whose WAL is not is never attached without that WAL."""
    path = tmp_path / "warehouse_bigwal.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE person AS SELECT range AS id FROM range(10)")
        con.execute("CHECKPOINT")
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        for start in range(10, 200000, 10000):  # each below a row group: kept in the WAL, not written out
            con.execute(f"INSERT INTO person SELECT range FROM range({start}, {min(start + 10000, 200000)})")
    database, wal = path.stat().st_size, Path(str(path) + ".wal").stat().st_size
    assert wal > database
    s3 = local_stack.client("s3")
    s3.create_bucket(Bucket=S3_BUCKET + "-wal")
    s3.upload_file(str(path), S3_BUCKET + "-wal", path.name)
    s3.upload_file(str(path) + ".wal", S3_BUCKET + "-wal", path.name + ".wal")
    try:
        backend = S3TenantDatabases(f"s3://{S3_BUCKET}-wal/warehouse_{{bucket}}.duckdb")
        backend.download_max_bytes = database
        outcomes, rows, requests = _run(local_stack, backend, ["bigwal"])
    finally:
        for key in (path.name, path.name + ".wal"):
            s3.delete_object(Bucket=S3_BUCKET + "-wal", Key=key)
        s3.delete_bucket(Bucket=S3_BUCKET + "-wal")
    assert [o.status for o in outcomes] == ["ok"], outcomes
    assert rows == {"bigwal": (200000, sum(range(200000)))}
    assert requests >= 2 + 10  # both downloads tried, then attached over S3


def test_a_missing_tenant_is_reported_as_before(local_stack, uploaded) -> None:
    template, _, _ = uploaded
    downloaded, = _run(local_stack, S3TenantDatabases(template), ["absent"])[0]
    over_s3, = _run(local_stack, S3TenantDatabases(template, download_max_mb=0), ["absent"])[0]
    assert downloaded.status == over_s3.status == "error"
    assert downloaded.message == over_s3.message
    assert downloaded.message.startswith("Could not open database:")
    assert f"s3://{S3_BUCKET}/warehouse_absent.duckdb" in downloaded.message
