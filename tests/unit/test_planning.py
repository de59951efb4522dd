from pathlib import Path

from queryall.dal.tenant_databases import FolderTenantDatabases, TenantDatabase
from queryall.logic.planning import plan_targets
from queryall.models.catalog import CatalogTable, TenantCatalogEntry
from queryall.models.execution import ExecutionInput


def _tenants(tmp_path: Path, names: list[str]) -> FolderTenantDatabases:
    for name in names:
        (tmp_path / f"warehouse_{name}.duckdb").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a tenant")
    return FolderTenantDatabases(str(tmp_path / "warehouse_{bucket}.duckdb"))


def _execution(**kw) -> ExecutionInput:
    return ExecutionInput(job_id="j", submitted_at=0, sql="SELECT 1", limit=10, **kw)


def test_all_tenants_in_sorted_batches(tmp_path: Path) -> None:
    tenants = _tenants(tmp_path, [f"t{i:02d}" for i in range(7)])
    plan = plan_targets(_execution(), tenants, batch_size=3, max_concurrency=5)
    assert [b.buckets for b in plan.batches] == [["t00", "t01", "t02"], ["t03", "t04", "t05"], ["t06"]]
    assert [b.batch_index for b in plan.batches] == [0, 1, 2]
    assert plan.databases_total == 7 and plan.max_concurrency == 5 and plan.missing == {}


def test_requested_buckets_keep_order_map_hyphens_and_report_missing(tmp_path: Path) -> None:
    tenants = _tenants(tmp_path, ["blue_river", "acme"])
    plan = plan_targets(_execution(buckets=["blue-river", "nope", "acme", "blue_river"]), tenants, 10, 1)
    assert [b.buckets for b in plan.batches] == [["blue-river", "acme"]]
    assert list(plan.missing) == ["nope"]
    assert "warehouse_nope" in plan.missing["nope"]
    assert plan.databases_total == 3


def test_no_tenants_gives_no_batches(tmp_path: Path) -> None:
    plan = plan_targets(_execution(), _tenants(tmp_path, []), 10, 1)
    assert plan.batches == [] and plan.databases_total == 0


def _entry(tenant: TenantDatabase, tables: list[str], **kw) -> TenantCatalogEntry:
    return TenantCatalogEntry(bucket=tenant.bucket, database=f"warehouse_{tenant.bucket}", version=tenant.version,
                              tables=[CatalogTable(name=t) for t in tables], refreshed_at="2026-01-01T00:00:00.000Z",
                              **kw)


def test_catalog_skips_tenants_lacking_the_table_without_opening_them(tmp_path: Path) -> None:
    tenants = _tenants(tmp_path, ["has", "lacks", "unknown", "changed", "unreadable"])
    listed = {t.bucket: t for t in tenants.list_tenants()}
    catalog = {
        "has": _entry(listed["has"], ["Payment"]),  # names compare case-insensitively, as DuckDB's do
        "lacks": _entry(listed["lacks"], ["person"]),
        # A version the file no longer has: the catalog is stale for it, so QueryBatch checks.
        "changed": _entry(listed["changed"], ["person"]).model_copy(update={"version": "older"}),
        "unreadable": _entry(listed["unreadable"], [], error="Could not open database"),
    }
    plan = plan_targets(_execution(table="payment"), tenants, 10, 1, catalog=catalog)
    assert plan.skipped == {"lacks": "Table 'payment' not found"}
    assert [b.buckets for b in plan.batches] == [["changed", "has", "unknown", "unreadable"]]
    assert plan.databases_total == 5
    # Without `table` the catalog changes nothing.
    assert plan_targets(_execution(), tenants, 10, 1, catalog=catalog).skipped == {}


def test_the_recorded_scope_is_applied_again_when_planning(tmp_path: Path) -> None:
    tenants = _tenants(tmp_path, ["acme", "blue_river", "globex", "initech"])
    # No buckets named: exactly the tenants in scope that have a database; the others are not even counted.
    plan = plan_targets(_execution(scope=["blue-river", "acme", "ghost"]), tenants, 10, 1)
    assert [b.buckets for b in plan.batches] == [["acme", "blue_river"]]
    assert plan.databases_total == 2 and plan.missing == {} and plan.skipped == {}
    # A bucket outside the scope never reaches a batch, even if a job named one (submit refuses it first).
    plan = plan_targets(_execution(scope=["acme"], buckets=["acme", "globex"]), tenants, 10, 1)
    assert [b.buckets for b in plan.batches] == [["acme"]]
    assert plan.missing == {"globex": "Access denied to bucket 'globex'"}
    # An empty scope reaches nothing.
    assert plan_targets(_execution(scope=[]), tenants, 10, 1).databases_total == 0


def test_scope_intersection_and_first_denied_bucket_in_request_order() -> None:
    import pytest

    from queryall.errors import Forbidden
    from queryall.logic.scope import in_scope, require_buckets_in_scope, scope_suffixes

    suffixes = scope_suffixes(["blue-river", "acme"])
    assert in_scope("blue_river", suffixes) and in_scope("acme", suffixes) and not in_scope("globex", suffixes)
    assert in_scope("anything", None)
    require_buckets_in_scope(["acme", "blue_river"], ["acme", "blue-river"])
    require_buckets_in_scope(["globex"], None)
    with pytest.raises(Forbidden) as denied:
        require_buckets_in_scope(["acme", "zeta", "globex"], ["acme"])
    assert denied.value.message == "Access denied to bucket 'zeta'"
