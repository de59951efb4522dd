"""Fixtures the unit tests of tenant queries share."""

from __future__ import annotations

from pathlib import Path

import pytest

from queryall.dal.tenant_databases import FolderTenantDatabases, TenantDatabases


@pytest.fixture(scope="module")
def tenants(tenants_dir: Path) -> TenantDatabases:
    """The seeded tenants' databases, each a file in one folder (a test module may define its own)."""
    return FolderTenantDatabases(str(tenants_dir / "warehouse_{bucket}.duckdb"))
