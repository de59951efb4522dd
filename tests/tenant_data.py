"""Reading the seeded tenant files directly with DuckDB: what every end-to-end answer is compared with."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.conftest import CORRUPT_BUCKET


def tenant_files(tenants_dir: Path) -> dict[str, Path]:
    """Bucket -> database file of every healthy seeded tenant, in bucket order."""
    return {p.stem.removeprefix("warehouse_"): p for p in sorted(tenants_dir.glob("warehouse_*.duckdb"))
            if p.stem.removeprefix("warehouse_") != CORRUPT_BUCKET}


def direct(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def has_table(path: Path, table: str) -> bool:
    return bool(direct(path, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{table}'")[0][0])
