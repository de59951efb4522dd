"""K tenants of a batch at once on the S3 backend, downloaded into each worker's alias folder or (0 MB
downloads) each in its own sandboxed session over the local stack's S3: either way a tenant cannot
reach the tenants running beside it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from queryall.dal.tenant_databases import S3TenantDatabases
from queryall.logic import query_workers
from queryall.logic.query_workers import run_batch
from tests.attack_corpus import CORPUS
from tests.conftest import CORRUPT_BUCKET

pytestmark = pytest.mark.timeout(600)
K = 4
S3_BUCKET = "concurrent-tenants"
CROSS_TENANT = [c for c in CORPUS if "{other" in c[1]]


@pytest.fixture(scope="module")
def s3_tenants(local_stack, tenants_dir: Path):
    buckets = sorted(p.name.removeprefix("warehouse_").removesuffix(".duckdb")
                     for p in tenants_dir.glob("warehouse_*.duckdb") if CORRUPT_BUCKET not in p.name)[:K]
    s3 = local_stack.client("s3")
    s3.create_bucket(Bucket=S3_BUCKET)
    for bucket in buckets:
        s3.upload_file(str(tenants_dir / f"warehouse_{bucket}.duckdb"), S3_BUCKET, f"warehouse_{bucket}.duckdb")
    try:
        yield f"s3://{S3_BUCKET}/warehouse_{{bucket}}.duckdb", buckets
    finally:
        for bucket in buckets:
            s3.delete_object(Bucket=S3_BUCKET, Key=f"warehouse_{bucket}.duckdb")
        s3.delete_bucket(Bucket=S3_BUCKET)


@pytest.mark.parametrize("download_max_mb", [64, 0], ids=["downloaded", "over-s3"])
@pytest.mark.parametrize(("name", "sql", "expected"), CROSS_TENANT, ids=[c[0] for c in CROSS_TENANT])
def test_an_s3_tenant_cannot_reach_the_tenants_running_beside_it(
    name: str, sql: str, expected: str, download_max_mb: int, s3_tenants, tenants_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    template, buckets = s3_tenants
    backend = S3TenantDatabases(template, download_max_mb)
    other, own = buckets[0], buckets[1]
    batch = [own, other, *buckets[2:]]
    text = (sql.replace("{other}", backend.location(other)).replace("{own}", backend.location(own))
            .replace("{other_db}", backend.database_name(other)).replace("{dir}", f"s3://{S3_BUCKET}"))
    monkeypatch.setattr(query_workers, "check_read_only_select", lambda t: t)
    outcomes, tables = run_batch(batch, backend, text, 100, None, 30, memory_limit_mb=256, threads=1,
                                 concurrency=K)
    assert [o.bucket for o in outcomes] == batch
    if expected == "harmless":
        assert [o.status for o in outcomes] == ["ok"] * K, outcomes
        rows = sorted((tuple(r.values()) for t in tables for r in t.to_pylist()), key=str)
        direct = []
        for bucket in batch:
            with duckdb.connect(str(tenants_dir / f"warehouse_{bucket}.duckdb"), read_only=True) as con:
                direct += [(bucket, *r) for r in con.execute(text).fetchall()]
        assert rows == sorted(direct, key=str)
        return
    for outcome in outcomes:
        if outcome.bucket != other or download_max_mb:  # over S3, its own session may open its own object
            assert outcome.status == "error", outcomes
    assert {r["_bucket"] for t in tables for r in t.to_pylist()} <= {other}
