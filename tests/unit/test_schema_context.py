"""The schema a SQL generator is shown: built from catalog entries, bounded, narrowed to the targets."""

from __future__ import annotations

from queryall.logic.schema_context import build_schema_context
from queryall.models.catalog import CatalogColumn, CatalogTable, TenantCatalogEntry


def tenant(bucket: str, tables: dict[str, dict[str, str] | None], error: str | None = None) -> TenantCatalogEntry:
    return TenantCatalogEntry(
        bucket=bucket, database=f"warehouse_{bucket}", version="1", error=error, refreshed_at="2026-01-01T00:00:00Z",
        tables=[CatalogTable(name=name, columns=None if columns is None else
                             [CatalogColumn(name=c, type=t) for c, t in columns.items()])
                for name, columns in tables.items()],
    )


PERSON = {"id": "BIGINT", "email": "VARCHAR"}
CATALOG = [
    tenant("acme", {"person": PERSON, "payment": {"id": "BIGINT", "amount": "DECIMAL(12,2)"}}),
    tenant("globex", {"person": PERSON, "payment": {"id": "BIGINT", "amount": "DOUBLE"}}),
    tenant("initech", {"person": {**PERSON, "phone": "VARCHAR"}, "event": {"at": "TIMESTAMP"}}),
    tenant("broken", {"secret_table": {"x": "INTEGER"}}, error="not a database"),
]


def test_tables_with_tenant_counts_types_and_disagreements() -> None:
    context = build_schema_context(CATALOG)
    text = context.text
    assert context.tables == ["person", "payment", "event"]  # most common first, then by name
    assert "TABLE person  -- in 3 of 3 tenants" in text
    assert "  id BIGINT\n" in text and "  email VARCHAR\n" in text
    assert "phone VARCHAR  -- only in 1 of the 3 tenants with this table" in text
    assert "amount DECIMAL(12,2)  -- tenants disagree on its type: DECIMAL(12,2) in 1, DOUBLE in 1" in text
    assert "TABLE payment  -- in 2 of 3 tenants" in text
    assert "secret_table" not in text  # a tenant that could not be read describes nothing
    assert context.buckets == ["acme", "globex", "initech"] and context.left_out == []


def test_cut_at_the_bound_keeps_the_most_common_tables_and_names_the_rest() -> None:
    wide = [tenant(f"t{i}", {f"table_{j:03d}": {f"column_{k}": "VARCHAR" for k in range(20)}
                             for j in range(i, 200)}) for i in range(5)]
    context = build_schema_context(wide, max_chars=3_000)
    assert len(context.text) <= 3_000
    assert context.tables and context.left_out
    assert context.tables[0] == "table_004"  # every tenant has it
    assert set(context.tables) | set(context.left_out) == {f"table_{j:03d}" for j in range(200)}
    assert "-- cut to fit; tables also present" in context.text
    full = build_schema_context(wide, max_chars=500_000)
    assert full.left_out == [] and len(full.text) > 3_000
    assert build_schema_context(wide).text != full.text  # the default bound (24,000) cuts this one too
    assert len(build_schema_context(wide).text) <= 24_000


def test_buckets_narrow_to_those_tenants_hyphens_as_underscores() -> None:
    catalog = [*CATALOG, tenant("blue_river", {"membership": {"id": "BIGINT"}})]
    context = build_schema_context(catalog, buckets=["blue-river", "initech"])
    assert context.buckets == ["blue_river", "initech"]
    assert context.tables == ["event", "membership", "person"]
    assert "payment" not in context.text and "amount" not in context.text


def test_table_narrows_to_that_table() -> None:
    context = build_schema_context(CATALOG, table="PAYMENT")
    assert context.tables == ["payment"]
    assert "person" not in context.text and "TABLE payment  -- in 2 of 3 tenants" in context.text


def test_a_callers_scope_hides_every_other_tenants_schema() -> None:
    context = build_schema_context(CATALOG, allowed_buckets={"initech"})
    assert context.buckets == ["initech"] and context.tables == ["event", "person"]
    assert "payment" not in context.text
    # Asking for buckets outside the scope shows nothing of them.
    assert build_schema_context(CATALOG, buckets=["acme"], allowed_buckets={"initech"}).tables == []


def test_version_follows_what_is_shown() -> None:
    assert build_schema_context(CATALOG).version == build_schema_context(list(reversed(CATALOG))).version
    assert build_schema_context(CATALOG).version != build_schema_context(CATALOG, table="person").version


def test_tables_whose_columns_were_not_kept() -> None:
    context = build_schema_context([tenant("huge", {"wide": None})])
    assert "TABLE wide  -- in 1 of 1 tenants\n  (columns unknown)" in context.text
