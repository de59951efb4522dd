from pathlib import Path

from queryall.dal.tenant_databases import FolderTenantDatabases
from queryall.logic.planning import plan_targets
from queryall.models.workflow import ExecutionInput


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
