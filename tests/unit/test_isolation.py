"""Tenant isolation at the logic level: every query of the attack corpus is refused by the SQL guard or
stopped where it runs, a query reads only its own tenant, and no tenant file changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from queryall.dal.tenant_databases import FolderTenantDatabases, TenantDatabases
from queryall.logic import tenant_query
from queryall.logic.sql_guard import SqlRejected, check_read_only_select
from queryall.logic.tenant_query import run_batch
from queryall.models.api import SubmitRequest
from tests.attack_corpus import CORPUS
from tests.conftest import CORRUPT_BUCKET

pytestmark = pytest.mark.timeout(300)
TIMEOUT = 1.5
LIMITS = {"memory_limit_mb": 256, "threads": 2}


def checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def before(tenants_dir: Path) -> dict[str, str]:
    return checksums(tenants_dir)


@pytest.fixture(scope="module")
def tenants(tenants_dir: Path, before: dict[str, str]) -> TenantDatabases:
    return FolderTenantDatabases(str(tenants_dir / "warehouse_{bucket}.duckdb"))


@pytest.fixture(scope="module")
def pair(tenants: TenantDatabases) -> tuple[str, str]:
    own, other = [t.bucket for t in tenants.list_tenants() if t.bucket != CORRUPT_BUCKET][:2]
    return own, other


def render(sql: str, tenants: TenantDatabases, own: str, other: str) -> str:
    return (sql.replace("{other}", tenants.location(other)).replace("{own}", tenants.location(own))
            .replace("{other_db}", tenants.database_name(other))
            .replace("{dir}", str(Path(tenants.location(own)).parent)))


def direct(path: str, sql: str) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= 40
    assert len({name for name, _, _ in CORPUS}) == len(CORPUS)
    assert {expected for _, _, expected in CORPUS} == {"rejected", "too_large", "error", "harmless"}


@pytest.mark.parametrize(("name", "sql", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_query_is_refused_or_contained(name: str, sql: str, expected: str, tenants: TenantDatabases,
                                               pair: tuple[str, str]) -> None:
    own, other = pair
    sql = render(sql, tenants, own, other)
    if expected == "too_large":
        with pytest.raises(ValidationError):
            SubmitRequest(sql=sql)
        return
    if expected == "rejected":
        with pytest.raises(SqlRejected) as refused:
            check_read_only_select(sql)
        assert str(refused.value)  # a reason the caller can read
        return
    buckets = [own] if expected == "error" else [own, other]
    outcomes, tables = run_batch(buckets, tenants, sql, 100, None, TIMEOUT, **LIMITS)
    if expected == "error":
        assert [o.status for o in outcomes] == ["error"], outcomes
        assert tables == []
        return
    assert [o.status for o in outcomes] == ["ok", "ok"], outcomes
    rows = [tuple(r.values()) for t in tables for r in t.to_pylist()]
    expected_rows = [(b, *r) for b in buckets for r in direct(tenants.location(b), sql)]
    assert sorted(rows, key=str) == sorted(expected_rows, key=str)


# Corpus entries that reach for a file, a URL or another database: with the guard bypassed, the sandbox
# where the query runs must still refuse them (defense in depth). DuckDB's own metadata (system catalog)
# is not among them: in the sandbox it describes the queried tenant alone.
REACHING_OUT = [c for c in CORPUS if c[2] == "rejected" and c[1].lstrip().upper().startswith(("SELECT", "FROM",
                "WITH", "DESCRIBE", "SUMMARIZE", "PIVOT"))
                and any(m in c[1] for m in ("{other", "{dir}", "/etc", "/proc", "/tmp", "http", "s3://",
                                            "memory.", "temp."))]


@pytest.mark.parametrize(("name", "sql", "expected"), REACHING_OUT, ids=[c[0] for c in REACHING_OUT])
def test_sandbox_stops_what_the_guard_would_have(name: str, sql: str, expected: str, tenants: TenantDatabases,
                                                 pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    own, other = pair
    monkeypatch.setattr(tenant_query, "check_read_only_select", lambda text: text)
    outcomes, tables = run_batch([own], tenants, render(sql, tenants, own, other), 100, None, TIMEOUT, **LIMITS)
    assert [o.status for o in outcomes] == ["error"], outcomes
    assert tables == []


def test_sandbox_allows_only_the_batch_files_and_settings_stay_locked(
    tenants: TenantDatabases, pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    own, _ = pair
    monkeypatch.setattr(tenant_query, "check_read_only_select", lambda text: text)
    sql = ("SELECT current_setting('enable_external_access') AS external, current_setting('lock_configuration') "
           "AS locked, current_setting('allowed_paths') AS paths, current_setting('memory_limit') AS memory, "
           "current_setting('temp_directory') AS temp")
    outcomes, tables = run_batch([own], tenants, sql, 1, None, TIMEOUT, **LIMITS)
    assert outcomes[0].status == "ok", outcomes
    row = tables[0].to_pylist()[0]
    assert row["external"] is False and row["locked"] is True and row["temp"] == ""
    assert sorted(row["paths"]) == sorted([tenants.location(own), tenants.location(own) + ".wal"])
    assert row["memory"].startswith("244") or "MiB" in row["memory"]


def test_each_tenant_sees_only_its_own_rows(tenants: TenantDatabases, pair: tuple[str, str]) -> None:
    own, other = pair
    sql = "SELECT current_database() AS db, count(*) AS n, min(email) AS first FROM person"
    outcomes, tables = run_batch([own, other], tenants, sql, 10, None, TIMEOUT, **LIMITS)
    assert [o.status for o in outcomes] == ["ok", "ok"]
    rows = {r["_bucket"]: (r["n"], r["first"]) for t in tables for r in t.to_pylist()}
    for bucket in (own, other):
        assert rows[bucket] == direct(tenants.location(bucket), "SELECT count(*), min(email) FROM person")[0]


def test_a_killed_worker_does_not_stop_the_batch(tenants: TenantDatabases, pair: tuple[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    own, other = pair
    monkeypatch.setattr(tenant_query, "check_read_only_select", lambda text: text)
    # Only the first tenant's query overruns (a huge lpad ignores DuckDB's interrupt); the next runs normally.
    own_count = direct(tenants.location(own), "SELECT count(*) FROM person")[0][0]
    sql = (f"SELECT length(lpad('x', CASE WHEN n = {own_count} THEN 2000000000 ELSE 1 END, 'y')) AS n "
           "FROM (SELECT count(*) AS n FROM person)")
    outcomes, _ = run_batch([own, other], tenants, sql, 1, None, TIMEOUT, **LIMITS)
    statuses = {o.bucket: (o.status, o.message) for o in outcomes}
    assert statuses[own][0] == "error" and ("timeout" in statuses[own][1] or "memory" in statuses[own][1])
    if direct(tenants.location(other), "SELECT count(*) FROM person")[0][0] != own_count:
        assert statuses[other] == ("ok", None)


def test_tenant_files_are_byte_identical_afterwards(tenants_dir: Path, before: dict[str, str]) -> None:
    assert checksums(tenants_dir) == before
