"""Catalog refresh against DynamoDB (moto) and real tenant files: only new or changed tenants are read."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from queryall.dal.catalog import CatalogStore
from queryall.dal.tenant_databases import FolderTenantDatabases
from queryall.errors import NotFound
from queryall.logic import catalog
from queryall.logic.catalog import refresh_catalog
from queryall.logic.submission import require_known_table


@pytest.fixture
def store(local_stack, request: pytest.FixtureRequest) -> CatalogStore:
    spec = local_stack.spec.tables["CatalogTable"]
    name = f"catalog-{request.node.name}"[:200]
    local_stack.client("dynamodb").create_table(TableName=name, KeySchema=spec.key_schema,
                                                AttributeDefinitions=spec.attribute_definitions,
                                                BillingMode="PAY_PER_REQUEST")
    return CatalogStore(name)


def make(folder: Path, bucket: str, sql: str) -> None:
    with duckdb.connect(str(folder / f"warehouse_{bucket}.duckdb")) as con:
        con.execute(sql)


def test_refresh_reads_changes_only_and_forgets_removed_tenants(store: CatalogStore, tmp_path: Path) -> None:
    make(tmp_path, "a", "CREATE TABLE person (id INTEGER)")
    make(tmp_path, "b", "CREATE TABLE payment (amount DECIMAL(12, 2))")
    tenants = FolderTenantDatabases(str(tmp_path / "warehouse_{bucket}.duckdb"))
    assert store.summary() is None
    require_known_table(store, "nothing")  # no catalog yet: nothing is known to be missing, nothing refused

    first = refresh_catalog(tenants, store, now=1_700_000_000)
    assert (first.tenants, first.read, first.unchanged, first.removed, first.errors) == (2, 2, 0, 0, 0)
    assert store.summary().tables == ["payment", "person"]
    require_known_table(store, "Person")
    with pytest.raises(NotFound, match=r"^Unknown table: event$"):
        require_known_table(store, "event")

    make(tmp_path, "b", "CREATE TABLE event (id INTEGER)")
    (tmp_path / "warehouse_a.duckdb").unlink()
    (tmp_path / "warehouse_c.duckdb").write_bytes(b"not a database")
    second = refresh_catalog(tenants, store, now=1_700_000_060)
    assert (second.tenants, second.read, second.unchanged, second.removed, second.errors) == (2, 2, 0, 1, 1)
    entries = store.entries()
    assert sorted(entries) == ["b", "c"]
    assert [t.name for t in entries["b"].tables] == ["event", "payment"]
    assert entries["c"].error and entries["c"].tables == []
    assert store.summary().tables == ["event", "payment"] and store.summary().tenants == 2

    third = refresh_catalog(tenants, store, now=1_700_000_120)
    assert (third.read, third.unchanged) == (1, 1)  # the unreadable one is tried again, b is not reopened

    page, after = store.page(1)
    assert [e.bucket for e in page] == ["b"] and after == "b"
    assert [e.bucket for e in store.page(5, after)[0]] == ["c"]


def test_the_refresh_schedule_is_an_eventbridge_rule(local_stack) -> None:
    (schedule,) = local_stack.spec.schedules
    assert schedule.function == "RefreshCatalogFunction" and schedule.expression == "rate(15 minutes)"
    rule = local_stack.client("events").describe_rule(Name=schedule.name)
    assert rule["ScheduleExpression"] == "rate(15 minutes)" and rule["State"] == "ENABLED"


def test_a_refresh_short_of_time_keeps_what_it_read_and_the_next_one_goes_on(
        store: CatalogStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tenants are read and written a chunk at a time; no chunk starts without time for it, and what
    was left is read by the next refresh (the ones already read are unchanged by then)."""
    monkeypatch.setattr(catalog, "REFRESH_CHUNK", 2)
    for bucket in "abcde":
        make(tmp_path, bucket, f"CREATE TABLE t_{bucket} (id INTEGER)")
    tenants = FolderTenantDatabases(str(tmp_path / "warehouse_{bucket}.duckdb"))
    time_left = iter([900.0, 900.0, 5.0])  # the third chunk would start with 5 s left

    first = refresh_catalog(tenants, store, now=1_700_000_000, remaining_seconds=lambda: next(time_left))
    assert (first.tenants, first.read, first.unchanged, first.pending) == (5, 4, 0, 1)
    assert sorted(store.entries()) == ["a", "b", "c", "d"]
    assert store.summary().tables == ["t_a", "t_b", "t_c", "t_d"]

    second = refresh_catalog(tenants, store, now=1_700_000_060, remaining_seconds=lambda: 900.0)
    assert (second.read, second.unchanged, second.pending) == (1, 4, 0)
    assert sorted(store.entries()) == list("abcde") and store.summary().tenants == 5
