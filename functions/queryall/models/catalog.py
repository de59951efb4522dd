"""The table catalog: which tables (and columns) each tenant database has.

The summary of every table name, which submit reads, is `models.catalog_summary.CatalogSummary`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class CatalogColumn(BaseModel):
    name: str
    type: str


class CatalogTable(BaseModel):
    name: str
    schema_name: str = "main"
    # None when the tenant's columns did not fit its catalog item (thousands of wide tables).
    columns: list[CatalogColumn] | None = None


class TenantCatalogEntry(BaseModel):
    """One tenant as the last refresh saw it."""

    bucket: str
    database: str
    # The backend's version of the database when it was read; a different version now means stale.
    version: str | None = None
    tables: list[CatalogTable] = Field(default_factory=list)
    error: str | None = None
    refreshed_at: str

    def has_table(self, table: str) -> bool:
        # DuckDB resolves table names case-insensitively, in any schema of the search path.
        wanted = table.lower()
        return any(t.name.lower() == wanted for t in self.tables)

    def describes(self, version: str | None) -> bool:
        """True when this entry can stand in for opening the database now (same known version)."""
        return self.error is None and self.version is not None and self.version == version


class RefreshResult(BaseModel):
    tenants: int
    read: int
    unchanged: int
    removed: int
    errors: int
    # New or changed tenants left for the next refresh: the function's time ran short.
    pending: int = 0
    refreshed_at: str


class DatabasesMeta(BaseModel):
    count: int = Field(description="Tenants on this page.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")
    refreshed_at: str | None = Field(None, description="When the catalog was last refreshed; null before the first.")
    tables: list[str] = Field(default_factory=list, description="Every table name any tenant has.")


class DatabasesResponse(BaseModel):
    data: list[TenantCatalogEntry]
    meta: DatabasesMeta


class RefreshStarted(BaseModel):
    status: str = Field("refreshing", description="The refresh runs in the background; "
                                                 "GET /query-all/databases shows its refreshed_at when done.")


class RefreshResponse(BaseModel):
    data: RefreshStarted
