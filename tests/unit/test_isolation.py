"""Tenant isolation at the logic level: every query of the attack corpus is refused by the SQL guard or
stopped where it runs, a query reads only its own tenant, and no tenant file changes."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from queryall.dal.tenant_databases import FolderTenantDatabases, TenantDatabases
from queryall.logic import query_workers, tenant_query
from queryall.logic.query_workers import run_batch
from queryall.logic.sql_guard import SqlRejected, check_read_only_select
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
    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    outcomes, tables = run_batch([own], tenants, render(sql, tenants, own, other), 100, None, TIMEOUT, **LIMITS)
    assert [o.status for o in outcomes] == ["error"], outcomes
    assert tables == []


def test_sandbox_allows_only_the_alias_and_settings_stay_locked(
    tenants: TenantDatabases, pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    own, _ = pair
    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    sql = ("SELECT current_setting('enable_external_access') AS external, current_setting('lock_configuration') "
           "AS locked, current_setting('allowed_paths') AS paths, current_setting('memory_limit') AS memory, "
           "current_setting('temp_directory') AS temp")
    outcomes, tables = run_batch([own], tenants, sql, 1, None, TIMEOUT, **LIMITS)
    assert outcomes[0].status == "ok", outcomes
    row = tables[0].to_pylist()[0]
    assert row["external"] is False and row["locked"] is True and row["temp"] == ""
    # One alias path (and its WAL) in a private folder: no tenant's own path, not even the queried one's.
    alias = Path(min(row["paths"]))
    assert sorted(row["paths"]) == [str(alias), f"{alias}.wal"] and alias.name == tenant_query.ALIAS_FILE
    assert alias.parent.name.startswith(".queryall-alias-")
    # The folder is the worker's, kept for its next batch: no link outlives the tenant's turn, and the
    # folder goes with the worker.
    assert alias.parent.is_dir() and list(alias.parent.iterdir()) == []
    query_workers.stop_idle_workers()
    assert not alias.parent.exists()
    # DuckDB shows the configured limit (decimal megabytes) in binary units: 256 MB is "244.1 MiB".
    assert row["memory"] == f"{LIMITS['memory_limit_mb'] * 1000**2 / 1024**2:.1f} MiB" == "244.1 MiB"


class SessionPerTenant(FolderTenantDatabases):
    """The folder backend confined the way the S3 backend is: a sandboxed session per tenant."""

    confinement = "session"


class UnlinkableFolder(FolderTenantDatabases):
    """A folder whose files cannot be hard-linked (another file system, protected hard links)."""

    def point_alias(self, alias: str, bucket: str) -> None:
        raise OSError("Invalid cross-device link")


READ_ANOTHER_FILE = [
    "SELECT count(*) AS n FROM read_blob('{other}')",
    "SELECT count(*) AS n FROM '{other}'",
    "SELECT count(*) AS n FROM read_text('{other}.wal')",
    "SELECT count(*) AS n FROM glob('{dir}/*')",
]


@pytest.mark.parametrize("confinement", [FolderTenantDatabases, SessionPerTenant, UnlinkableFolder],
                         ids=["alias", "session", "unlinkable"])
@pytest.mark.parametrize("sql", READ_ANOTHER_FILE)
def test_another_tenant_of_the_same_batch_is_out_of_reach_where_the_query_runs(
    confinement: type[FolderTenantDatabases], sql: str, tenants: TenantDatabases, pair: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the guard bypassed, a query run for `own` in a batch that also holds `other` (before and
    after it) cannot open `other`'s file: the sandbox allows only the tenant being queried, through its
    alias or its own session."""
    own, other = pair
    backend = confinement(tenants.template)
    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    outcomes, tables = run_batch([other, own, other], backend, render(sql, backend, own, other), 100, None,
                                 TIMEOUT, **LIMITS)
    assert outcomes[1].bucket == own and outcomes[1].status == "error", outcomes
    assert "disabled by configuration" in (outcomes[1].message or ""), outcomes
    assert own not in {r["_bucket"] for t in tables for r in t.to_pylist()}
    if confinement is FolderTenantDatabases:  # the alias: not even a tenant's own file is open by path
        assert [o.status for o in outcomes] == ["error"] * 3 and tables == [], outcomes


@pytest.mark.parametrize("confinement", [FolderTenantDatabases, SessionPerTenant, UnlinkableFolder],
                         ids=["alias", "session", "unlinkable"])
def test_every_confinement_gives_each_tenant_its_own_rows(confinement: type[FolderTenantDatabases],
                                                          tenants: TenantDatabases) -> None:
    backend = confinement(tenants.template)
    buckets = [t.bucket for t in tenants.list_tenants() if t.bucket != CORRUPT_BUCKET][:6]
    sql = "SELECT count(*) AS n, min(email) AS first FROM person"
    outcomes, tables = run_batch(buckets, backend, sql, 10, None, TIMEOUT, **LIMITS)
    assert [o.status for o in outcomes] == ["ok"] * len(buckets), outcomes
    rows = {r["_bucket"]: (r["n"], r["first"]) for t in tables for r in t.to_pylist()}
    assert rows == {b: direct(tenants.location(b), sql)[0] for b in buckets}


def test_the_alias_leads_nowhere_while_a_query_runs(tenants: TenantDatabases, pair: tuple[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The alias is unlinked once its tenant is attached: a query (guard bypassed) that names it reads
    nothing through it, so nothing of one tenant can be opened again or outlive its turn in the session."""
    own, other = pair
    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    backend = FolderTenantDatabases(tenants.template)
    folder = backend.alias_folder()
    assert folder is not None
    alias = str(Path(folder) / tenant_query.ALIAS_FILE)
    probe = (f"SELECT (SELECT count(*) FROM person) AS n, (SELECT list(path) FROM duckdb_databases() "
             f"WHERE NOT internal AND path IS NOT NULL) AS attached, "
             f"(SELECT count(*) FROM read_blob('{alias}')) AS through_alias")
    runner = tenant_query.TenantQueryRunner(backend, TIMEOUT, alias_folder=folder, **LIMITS)
    try:
        for bucket in (own, other):
            seen, rows = runner.run(bucket, probe, 1, None)
            assert seen.status == "ok" and rows is not None, seen
            count = direct(tenants.location(bucket), "SELECT count(*) FROM person")[0][0]
            assert rows.to_pylist() == [{"n": count, "attached": [alias], "through_alias": 0}]
            assert not Path(alias).exists()
    finally:
        runner.close()
        shutil.rmtree(folder)


def test_a_tenant_with_a_write_ahead_log_is_read_whole_through_the_alias(tmp_path: Path) -> None:
    """Rows still in a tenant's WAL (not yet checkpointed) are read too: the WAL is linked beside the
    alias while the tenant is attached, and neither file is changed."""
    path = tmp_path / "warehouse_walled.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE person AS SELECT range AS id FROM range(10)")
        con.execute("CHECKPOINT")
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute("SET checkpoint_threshold = '1GB'")
        con.execute("INSERT INTO person SELECT range + 10 FROM range(5)")
    assert Path(f"{path}.wal").is_file()
    before = checksums(tmp_path)
    backend = FolderTenantDatabases(str(tmp_path / "warehouse_{bucket}.duckdb"))
    outcomes, tables = run_batch(["walled"], backend, "SELECT count(*) AS n FROM person", 10, None, TIMEOUT,
                                 **LIMITS)
    assert outcomes[0].status == "ok", outcomes
    assert tables[0].to_pylist() == [{"_bucket": "walled", "n": 15}]
    assert checksums(tmp_path) == before


def test_no_alias_folder_where_the_tenant_folder_does_not_exist() -> None:
    assert FolderTenantDatabases("/nonexistent/queryall/warehouse_{bucket}.duckdb").alias_folder() is None


def _hang_in_setup_while(marker: Path, hangs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers hang while the session is set up (as one forked while another thread held a DuckDB lock
    would), the first `hangs` of them; the marker file counts them across the forked processes."""
    setup = tenant_query.TenantQueryRunner.__init__

    def hanging_setup(self, *args, **kwargs):
        started = len(marker.read_text()) if marker.exists() else 0
        marker.write_text("x" * (started + 1))
        if started < hangs:
            time.sleep(60)
        setup(self, *args, **kwargs)

    query_workers.stop_idle_workers()  # a worker kept from an earlier batch would not be set up again
    monkeypatch.setattr(tenant_query.TenantQueryRunner, "__init__", hanging_setup)
    monkeypatch.setattr(query_workers, "_SETUP_TIMEOUT_SECONDS", 0.5)


def test_a_worker_that_never_gets_ready_is_replaced_at_no_tenant_s_cost(
    tenants: TenantDatabases, pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hang_in_setup_while(tmp_path / "workers", query_workers._SETUP_ATTEMPTS - 1, monkeypatch)
    outcomes, tables = run_batch(list(pair), tenants, "SELECT count(*) AS n FROM person", 1, None, TIMEOUT,
                                 **LIMITS)
    assert [(o.bucket, o.status) for o in outcomes] == [(b, "ok") for b in pair], outcomes
    assert len((tmp_path / "workers").read_text()) == query_workers._SETUP_ATTEMPTS
    assert sorted(r["_bucket"] for t in tables for r in t.to_pylist()) == sorted(pair)


def test_workers_that_never_get_ready_fail_the_batch_after_a_few_attempts(
    tenants: TenantDatabases, pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hang_in_setup_while(tmp_path / "workers", 99, monkeypatch)
    outcomes, tables = run_batch(list(pair), tenants, "SELECT count(*) AS n FROM person", 1, None, TIMEOUT,
                                 **LIMITS)
    assert [(o.status, o.message) for o in outcomes] == [("error", "Could not start the query session in time")] * 2
    assert tables == [] and len((tmp_path / "workers").read_text()) == query_workers._SETUP_ATTEMPTS
