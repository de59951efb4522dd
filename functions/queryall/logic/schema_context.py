"""The schema a SQL generator is shown: the tables and columns the target tenants have, from the catalog.

One text for every tenant (the generated SQL runs unchanged on each): a table is listed with how many of
the described tenants have it, each column with its DuckDB type; where tenants disagree on a column's
type, or only some of them have it, the line says so. Most common tables come first, and the text stops
at `max_chars`: tables that no longer fit are named in one closing line (as many names as still fit),
their columns left out.

Only the tenants the job may reach are described: `buckets` and `table` narrow it as they narrow the
job, and `allowed_buckets` is the caller's scope (the access issue plugs its bucket set in here), so a
question never shows the generator another tenant's schema.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from queryall.dal.tenant_databases import database_suffix
from queryall.models.catalog import TenantCatalogEntry

DEFAULT_MAX_CHARS = 24_000


@dataclass
class _Column:
    name: str
    tenants: int = 0
    types: Counter[str] = field(default_factory=Counter)


@dataclass
class _Table:
    name: str
    tenants: int = 0
    # Tenants whose catalog entry has the table's name but not its columns (too large to keep).
    without_columns: int = 0
    columns: dict[str, _Column] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaContext:
    text: str
    # Described tenants, in bucket order (MotherDuck's generator asks the first one).
    buckets: list[str]
    tables: list[str]
    # Tables cut by the bound (their columns are not in `text`).
    left_out: list[str]

    @property
    def version(self) -> str:
        """Changes whenever what the generator is shown changes (the SQL cache keys on it)."""
        return hashlib.sha256(self.text.encode()).hexdigest()


def _select(entries: Iterable[TenantCatalogEntry], buckets: list[str] | None,
            allowed_buckets: set[str] | None) -> list[TenantCatalogEntry]:
    wanted = None if buckets is None else {database_suffix(b) for b in buckets}
    allowed = None if allowed_buckets is None else {database_suffix(b) for b in allowed_buckets}
    return sorted((e for e in entries if e.error is None
                   and (wanted is None or e.bucket in wanted) and (allowed is None or e.bucket in allowed)),
                  key=lambda e: e.bucket)


def _collect(tenants: list[TenantCatalogEntry], table: str | None) -> list[_Table]:
    tables: dict[str, _Table] = {}
    for tenant in tenants:
        for found in tenant.tables:
            key = found.name.lower()
            if table is not None and key != table.lower():
                continue
            summary = tables.setdefault(key, _Table(found.name))
            summary.tenants += 1
            if found.columns is None:
                summary.without_columns += 1
                continue
            for column in found.columns:
                entry = summary.columns.setdefault(column.name.lower(), _Column(column.name))
                entry.tenants += 1
                entry.types[column.type] += 1
    return sorted(tables.values(), key=lambda t: (-t.tenants, t.name.lower()))


def _render_table(table: _Table, tenants: int) -> str:
    lines = [f"TABLE {table.name}  -- in {table.tenants} of {tenants} tenants"]
    with_columns = table.tenants - table.without_columns
    if with_columns == 0:
        lines.append("  (columns unknown)")
    for column in table.columns.values():
        line = f"  {column.name} {column.types.most_common(1)[0][0]}"
        notes = []
        if len(column.types) > 1:
            kinds = ", ".join(f"{kind} in {count}" for kind, count in column.types.most_common())
            notes.append(f"tenants disagree on its type: {kinds}")
        if column.tenants < with_columns:
            notes.append(f"only in {column.tenants} of the {with_columns} tenants with this table")
        lines.append(line + ("  -- " + "; ".join(notes) if notes else ""))
    return "\n".join(lines) + "\n"


def build_schema_context(
    entries: Iterable[TenantCatalogEntry],
    *,
    buckets: list[str] | None = None,
    table: str | None = None,
    allowed_buckets: set[str] | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> SchemaContext:
    """The schema text for the tenants a job targets (see the module's docstring)."""
    tenants = _select(entries, buckets, allowed_buckets)
    tables = _collect(tenants, table)
    text = f"-- {len(tenants)} tenant databases described; DuckDB types.\n"
    shown: list[str] = []
    left_out: list[str] = []
    for summary in tables:
        block = _render_table(summary, len(tenants))
        if left_out or len(text) + len(block) > max_chars:
            left_out.append(summary.name)
        else:
            text += block
            shown.append(summary.name)
    if left_out:
        closing = "-- cut to fit; tables also present (fewer tenants have them), columns not shown: "
        names: list[str] = []
        for name in left_out:
            if len(text) + len(closing) + len(", ".join([*names, name])) + 1 > max_chars:
                break
            names.append(name)
        text += closing + (", ".join(names) or "…") + "\n"
    return SchemaContext(text=text, buckets=[t.bucket for t in tenants], tables=shown, left_out=left_out)
