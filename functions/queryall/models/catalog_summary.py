"""The catalog's summary item: every table name any tenant has.

Its own module, apart from the tenants' entries (`models.catalog`): submit checks `table` against this
one model only, and each pydantic model costs its schema build at import (submit's cold start).
"""

from __future__ import annotations

from pydantic import BaseModel


class CatalogSummary(BaseModel):
    """Every table name any tenant has, so submit can answer "Unknown table" with one read."""

    tables: list[str]
    tenants: int
    refreshed_at: str

    def knows_table(self, table: str) -> bool:
        return table.lower() in {t.lower() for t in self.tables}
