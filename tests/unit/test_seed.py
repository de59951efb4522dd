"""Deterministic sample tenants."""

from __future__ import annotations

import pathlib
import re

import duckdb
import pytest

from queryall_local.seed import WORDS, bucket_names, database_path, missing_tables, seed_tenants

COUNT = 30
TABLES = ("person", "payment", "membership", "event")
QUERIES = {
    "person": "SELECT * FROM person ORDER BY id",
    "payment": "SELECT * FROM payment ORDER BY id",
    "membership": "SELECT * FROM membership ORDER BY id",
    # TIMESTAMPTZ as text so the comparison does not depend on the client's time zone support.
    "event": "SELECT id, person_id, kind, occurred_at::VARCHAR, properties FROM event ORDER BY id",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, list[str]]:
    directory = tmp_path_factory.mktemp("tenants")
    return directory, seed_tenants(directory, COUNT)


def _tables(path: pathlib.Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _dump(path: pathlib.Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        present = {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        return {table: con.execute(sql).fetchall() for table, sql in QUERIES.items() if table in present}


def test_bucket_names_are_unique_valid_and_prefix_stable() -> None:
    names = bucket_names(1000)
    assert len(set(names)) == 1000
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names)
    assert names[:3] == ["acme", "northwind", "blue_river"]
    assert names[len(WORDS)] == "acme_2"
    assert bucket_names(50) == names[:50]
    assert bucket_names(0) == []
    with pytest.raises(ValueError):
        bucket_names(-1)


def test_seed_returns_sorted_buckets_and_writes_one_file_each(seeded: tuple[pathlib.Path, list[str]]) -> None:
    directory, buckets = seeded
    assert buckets == sorted(bucket_names(COUNT))
    files = sorted(p.name for p in directory.iterdir())
    assert files == sorted(f"warehouse_{b}.duckdb" for b in buckets)  # no .wal left behind
    assert database_path(directory, "acme") == directory / "warehouse_acme.duckdb"


def test_missing_tables_follow_the_documented_rule(seeded: tuple[pathlib.Path, list[str]]) -> None:
    directory, _ = seeded
    lacking_membership, lacking_payment = [], []
    for position, bucket in enumerate(bucket_names(COUNT), start=1):
        tables = _tables(database_path(directory, bucket))
        assert tables == set(TABLES) - missing_tables(position)
        if "membership" not in tables:
            lacking_membership.append(position)
        if "payment" not in tables:
            lacking_payment.append(position)
    assert lacking_membership == [4, 8, 12, 16, 20, 24, 28]
    assert lacking_payment == [7, 14, 21, 28]


def test_files_open_read_only_with_the_documented_schema(seeded: tuple[pathlib.Path, list[str]]) -> None:
    directory, _ = seeded
    with duckdb.connect(str(database_path(directory, "acme")), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE NOT internal "
            "ORDER BY table_name, column_index"
        ).fetchall()
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM person")
        person_count, emails_ok = con.execute(
            "SELECT count(*), bool_and(regexp_full_match(email, '[a-z0-9.\\-]+@[a-z.]+')) FROM person"
        ).fetchone()
        orphans = con.execute(
            "SELECT count(*) FROM payment WHERE person_id NOT IN (SELECT id FROM person)"
        ).fetchone()[0]
        currencies = {c for (c,) in con.execute("SELECT DISTINCT currency FROM payment").fetchall()}
    assert 20 <= person_count <= 400
    assert emails_ok
    assert orphans == 0
    assert currencies <= {"USD", "EUR", "GBP", "SEK", "NOK"} and len(currencies) > 1
    assert columns == [
        ("event", "id", "BIGINT"),
        ("event", "person_id", "BIGINT"),
        ("event", "kind", "VARCHAR"),
        ("event", "occurred_at", "TIMESTAMP WITH TIME ZONE"),
        ("event", "properties", 'STRUCT("source" VARCHAR, duration_ms INTEGER, tags VARCHAR[])'),
        ("membership", "id", "BIGINT"),
        ("membership", "person_id", "BIGINT"),
        ("membership", "plan", "VARCHAR"),
        ("membership", "started_at", "DATE"),
        ("membership", "ends_at", "DATE"),
        ("membership", "active", "BOOLEAN"),
        ("payment", "id", "BIGINT"),
        ("payment", "person_id", "BIGINT"),
        ("payment", "amount", "DECIMAL(12,2)"),
        ("payment", "currency", "VARCHAR"),
        ("payment", "paid_at", "TIMESTAMP"),
        ("payment", "status", "VARCHAR"),
        ("person", "id", "BIGINT"),
        ("person", "first_name", "VARCHAR"),
        ("person", "last_name", "VARCHAR"),
        ("person", "email", "VARCHAR"),
        ("person", "country", "VARCHAR"),
        ("person", "created_at", "TIMESTAMP"),
    ]


def test_row_counts_vary_between_tenants(seeded: tuple[pathlib.Path, list[str]]) -> None:
    directory, buckets = seeded
    counts = set()
    for bucket in buckets:
        with duckdb.connect(str(database_path(directory, bucket)), read_only=True) as con:
            counts.add(con.execute("SELECT count(*) FROM person").fetchone()[0])
    assert len(counts) > COUNT // 2
    assert all(20 <= c <= 400 for c in counts)


def test_same_input_gives_the_same_rows(
    seeded: tuple[pathlib.Path, list[str]], tmp_path: pathlib.Path
) -> None:
    directory, _ = seeded
    # A smaller seed elsewhere: tenants are the same prefix, with the same content.
    again = seed_tenants(tmp_path, 9)
    assert again == sorted(bucket_names(9))
    for bucket in again:
        first, second = _dump(database_path(directory, bucket)), _dump(database_path(tmp_path, bucket))
        assert first == second
        assert first["person"]  # not vacuously equal


def test_different_tenants_have_different_rows(seeded: tuple[pathlib.Path, list[str]]) -> None:
    directory, _ = seeded
    acme, northwind = (_dump(database_path(directory, b))["person"] for b in ("acme", "northwind"))
    assert acme != northwind


def test_reseeding_overwrites_and_rows_scale_changes_sizes(tmp_path: pathlib.Path) -> None:
    path = database_path(tmp_path, "acme")
    path.write_bytes(b"not a database")
    seed_tenants(tmp_path, 1, rows_scale=0.1)
    small = _dump(path)
    seed_tenants(tmp_path, 1)
    full = _dump(path)
    assert 2 <= len(small["person"]) <= 40
    assert len(full["person"]) > len(small["person"])
    # Scaling keeps row generation per id, so the smaller tenant is a prefix of the larger one.
    assert full["person"][: len(small["person"])] == small["person"]
    with pytest.raises(ValueError):
        seed_tenants(tmp_path, 1, rows_scale=0)
