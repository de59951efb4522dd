"""Running a batch's query on its tenants: what comes back, in which types, and from which worker."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from queryall.dal.tenant_databases import FolderTenantDatabases, TenantDatabases
from queryall.logic.tenant_query import run_batch
from tests.conftest import CORRUPT_BUCKET

pytestmark = pytest.mark.timeout(120)
LIMITS = {"memory_limit_mb": 256, "threads": 1}


@pytest.fixture(scope="module")
def tenants(tenants_dir: Path) -> TenantDatabases:
    return FolderTenantDatabases(str(tenants_dir / "warehouse_{bucket}.duckdb"))


@pytest.fixture(scope="module")
def buckets(tenants: TenantDatabases) -> list[str]:
    return [t.bucket for t in tenants.list_tenants() if t.bucket != CORRUPT_BUCKET][:3]


def test_types_arrow_cannot_carry_come_back_as_their_text(tenants: TenantDatabases, buckets: list[str]) -> None:
    sql = ("SELECT 340282366920938463463374607431768211455::UHUGEINT AS \"big \"\"u\"\"\", "
           "'0101'::BIT AS bits, count(*) AS people FROM person")
    outcomes, tables = run_batch(buckets, tenants, sql, 10, None, 10, **LIMITS)
    assert [o.status for o in outcomes] == ["ok"] * len(buckets)
    [table] = tables
    assert table.schema.names == ["_bucket", 'big "u"', "bits", "people"]
    assert table.schema.field('big "u"').type == pa.string()
    assert table.column('big "u"').to_pylist() == ["340282366920938463463374607431768211455"] * len(buckets)
    assert table.column("bits").to_pylist() == ["0101"] * len(buckets)
    assert table.schema.field("people").type == pa.int64()
