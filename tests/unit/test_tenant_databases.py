"""Tenant database backends: URI templates, listing, and the SQL each backend issues."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from queryall.dal.tenant_databases import (
    DESCRIBE_CONCURRENCY,
    FolderTenantDatabases,
    MotherDuckTenantDatabases,
    S3TenantDatabases,
    extension_path,
    s3_secret_sql,
    tenant_databases,
)


@pytest.mark.parametrize(
    ("uri", "kind", "location"),
    [
        ("/data/warehouse_{bucket}.duckdb", FolderTenantDatabases, "/data/warehouse_blue_river.duckdb"),
        ("file:///data/warehouse_{bucket}.duckdb", FolderTenantDatabases, "/data/warehouse_blue_river.duckdb"),
        ("s3://tenants/prod/warehouse_{bucket}.duckdb", S3TenantDatabases,
         "s3://tenants/prod/warehouse_blue_river.duckdb"),
        ("md:warehouse_{bucket}?token_ssm=/queryall/md", MotherDuckTenantDatabases, "md:warehouse_blue_river"),
    ],
)
def test_uri_template_selects_the_backend(uri: str, kind: type, location: str) -> None:
    backend = tenant_databases(uri)
    assert type(backend) is kind
    assert backend.location("blue-river") == location
    assert backend.database_name("blue-river") == "warehouse_blue_river"


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("/data/warehouse.duckdb", "exactly once"),
        ("/data/{bucket}/{bucket}.duckdb", "exactly once"),
        ("s3:///warehouse_{bucket}.duckdb", "s3://bucket/prefix"),
        ("s3://tenants/{bucket}/db.duckdb", "s3://bucket/prefix"),
        ("md:warehouse_{bucket}", "token_ssm"),
        ("md:warehouse_{bucket}?token_ssm=/a&token_secret=b", "token_ssm"),
        ("md:warehouse_{bucket}?password=x", "token_ssm"),
    ],
)
def test_bad_templates_are_refused_with_the_expected_shape(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("?", r"\?")):
        tenant_databases(uri)


@pytest.mark.parametrize("bucket", ["../etc", "a/b", "", "-x", "x" * 64])
def test_invalid_bucket_ids_never_become_locations(bucket: str) -> None:
    with pytest.raises(ValueError, match="invalid bucket id"):
        FolderTenantDatabases("/data/warehouse_{bucket}.duckdb").location(bucket)


def test_folder_lists_tenants_with_a_version_that_changes_with_the_file(tmp_path: Path) -> None:
    for name in ("b", "a_1"):
        duckdb.connect(str(tmp_path / f"warehouse_{name}.duckdb")).close()
    (tmp_path / "warehouse_bad name.duckdb").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a tenant")
    backend = FolderTenantDatabases(str(tmp_path / "warehouse_{bucket}.duckdb"))
    listed = backend.list_tenants()
    assert [t.bucket for t in listed] == ["a_1", "b"]
    before = listed[1].version
    with duckdb.connect(str(tmp_path / "warehouse_b.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert backend.list_tenants()[1].version != before


def test_folder_backend_describes_tables_and_reports_unreadable_files(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "warehouse_ok.duckdb")) as con:
        con.execute("CREATE TABLE person (id BIGINT, email VARCHAR); CREATE VIEW adults AS SELECT id FROM person")
    (tmp_path / "warehouse_broken.duckdb").write_bytes(b"not a database" * 10)
    backend = FolderTenantDatabases(str(tmp_path / "warehouse_{bucket}.duckdb"))
    described = backend.describe(["ok", "broken"])
    tables = {t.name: [(c.name, c.type) for c in t.columns or []] for t in described["ok"].tables}
    assert tables == {"adults": [("id", "BIGINT")], "person": [("id", "BIGINT"), ("email", "VARCHAR")]}
    assert described["ok"].error is None
    assert described["broken"].tables == [] and "Could not open database" in (described["broken"].error or "")


def test_extension_binaries_come_from_the_wheels() -> None:
    for name in ("httpfs", "motherduck"):
        path = extension_path(name)
        assert os.path.isfile(path) and path.endswith(f"{name}.duckdb_extension")
    # Loadable offline, straight from the wheel.
    with duckdb.connect(config={"autoinstall_known_extensions": False}) as con:
        con.execute(f"LOAD '{extension_path('httpfs')}'")
        assert con.execute("SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchone() == (
            True,)


def test_s3_secret_uses_the_function_credentials_and_local_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "se'cret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    sql = s3_secret_sql()
    assert sql.startswith("CREATE SECRET tenant_databases (TYPE s3, KEY_ID 'AKIDEXAMPLE', SECRET 'se''cret'")
    assert "REGION 'eu-north-1'" in sql and "SESSION_TOKEN 'token'" in sql
    assert sql.endswith("ENDPOINT '127.0.0.1:4566', URL_STYLE 'path', USE_SSL False)")
    with duckdb.connect() as con:  # DuckDB accepts it
        con.execute(f"LOAD '{extension_path('httpfs')}'")
        con.execute(sql)
        assert con.execute("SELECT count(*) FROM duckdb_secrets() WHERE name = 'tenant_databases'").fetchone() == (1,)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert "ENDPOINT" not in s3_secret_sql()


class FakeMotherDuck:
    """Stands in for a DuckDB connection attached to MotherDuck: records SQL, answers the catalog queries."""

    def __init__(self, databases: dict[str, dict[str, list[tuple[str, str]]]]) -> None:
        self.databases = databases
        self.statements: list[str] = []
        self.current = "memory"
        self.closed = False

    def execute(self, sql: str, params: list[Any] | None = None) -> FakeMotherDuck:
        self.statements.append(sql)
        if sql.startswith("USE "):
            self.current = sql[4:].strip('"')
        if "FROM duckdb_databases()" in sql:
            self._rows = [(name,) for name in sorted(self.databases)]
        elif "FROM duckdb_columns()" in sql:
            (catalog,) = params or []
            self._rows = [("main", table, column, kind) for table, columns in self.databases[catalog].items()
                          for column, kind in columns]
        return self

    def fetchall(self) -> list[tuple]:
        return self._rows

    def close(self) -> None:
        self.closed = True


def test_motherduck_lists_uses_and_describes_databases_through_one_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeMotherDuck({"warehouse_acme": {"person": [("id", "BIGINT")]}, "warehouse_blue_river": {},
                           "sample_data": {}, "my_db": {}})
    backend = MotherDuckTenantDatabases("md:warehouse_{bucket}?token_ssm=/queryall/md-token", connect=lambda: fake)
    monkeypatch.setattr(backend, "token", lambda: "tok'en")
    assert backend.confinement == "none" and backend.allowed_paths("acme") == []
    assert [(t.bucket, t.location) for t in backend.list_tenants()] == [
        ("acme", "md:warehouse_acme"), ("blue_river", "md:warehouse_blue_river")]
    assert fake.statements[:3] == [f"LOAD '{extension_path('motherduck')}'", "SET motherduck_token = 'tok''en'",
                                   "ATTACH 'md:'"]
    assert fake.closed
    fake.statements.clear()
    described = backend.describe(["acme"])
    assert [(t.name, [c.name for c in t.columns or []]) for t in described["acme"].tables] == [("person", ["id"])]
    # Switching databases is a USE on the one connection, as the reference service does.
    assert fake.statements[3:] == ['USE "warehouse_acme"', fake.statements[4], "USE memory"]
    assert "duckdb_columns()" in fake.statements[4]


def test_motherduck_token_store_is_parsed() -> None:
    ssm = MotherDuckTenantDatabases("md:warehouse_{bucket}?token_ssm=/queryall/md-token")
    secret = MotherDuckTenantDatabases("md:warehouse_{bucket}?token_secret=queryall/motherduck")
    assert (ssm.token_in_ssm, ssm.token_name) == (True, "/queryall/md-token")
    assert (secret.token_in_ssm, secret.token_name) == (False, "queryall/motherduck")


def test_tenants_opened_over_the_network_are_described_several_at_once(tmp_path: Path) -> None:
    """The catalog reads network tenants DESCRIBE_CONCURRENCY at a time, each thread in its own session;
    every tenant is described as one session alone describes it, in the order asked."""
    buckets = [f"t{index:02d}" for index in range(20)]
    for index, bucket in enumerate(buckets):
        if index % 7 == 3:
            (tmp_path / f"warehouse_{bucket}.duckdb").write_bytes(b"not a database" * 10)
            continue
        with duckdb.connect(str(tmp_path / f"warehouse_{bucket}.duckdb")) as con:
            con.execute(f"CREATE TABLE person_{index} (id BIGINT)")
    template = str(tmp_path / "warehouse_{bucket}.duckdb")
    sessions: list[str] = []

    class OverTheNetwork(FolderTenantDatabases):
        opens_over_network = True

        def open_session(self):
            sessions.append(threading.current_thread().name)
            return super().open_session()

    described = OverTheNetwork(template).describe(iter(buckets))
    assert list(described) == buckets
    assert described == FolderTenantDatabases(template).describe(buckets)
    assert len(sessions) == len(set(sessions)) == DESCRIBE_CONCURRENCY
    assert sum(schema.error is not None for schema in described.values()) == 3
