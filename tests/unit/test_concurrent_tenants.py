"""A batch querying K tenants at once (`run_batch(..., concurrency=K)`): each tenant still runs alone in
its own sandboxed worker, so a tenant cannot reach the tenants running beside it, and one tenant's
timeout or memory kill costs that tenant alone."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from queryall.dal.tenant_databases import FolderTenantDatabases, TenantDatabases
from queryall.logic import query_workers
from queryall.logic.query_workers import run_batch
from tests.attack_corpus import CORPUS
from tests.conftest import CORRUPT_BUCKET

pytestmark = pytest.mark.timeout(300)
TIMEOUT = 1.5
K = 4
LIMITS = {"memory_limit_mb": 256, "threads": 1}
# The corpus's cross-tenant cases: a query naming another tenant's file or database.
CROSS_TENANT = [c for c in CORPUS if "{other" in c[1]]


class SessionPerTenant(FolderTenantDatabases):
    """The folder backend confined the way the S3 backend is: a sandboxed session per tenant."""

    confinement = "session"


@pytest.fixture(scope="module")
def buckets(tenants: TenantDatabases) -> list[str]:
    return [t.bucket for t in tenants.list_tenants() if t.bucket != CORRUPT_BUCKET][:8]


def direct(path: str, sql: str) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(sql).fetchall()


def render(sql: str, tenants: TenantDatabases, own: str, other: str) -> str:
    return (sql.replace("{other}", tenants.location(other)).replace("{own}", tenants.location(own))
            .replace("{other_db}", tenants.database_name(other))
            .replace("{dir}", str(Path(tenants.location(own)).parent)))


def test_concurrent_tenants_give_their_own_rows_in_the_batch_s_order(tenants: TenantDatabases,
                                                                     buckets: list[str]) -> None:
    sql = "SELECT count(*) AS n, min(email) AS first FROM person"
    finished = []
    outcomes, tables = run_batch(buckets, tenants, sql, 10, None, TIMEOUT, finished.append, concurrency=K, **LIMITS)
    assert [o.bucket for o in outcomes] == buckets and [o.status for o in outcomes] == ["ok"] * len(buckets)
    assert sorted(o.bucket for o in finished) == sorted(buckets)  # progress hears of every tenant
    rows = [tuple(r.values()) for t in tables for r in t.to_pylist()]
    assert rows == [(b, *direct(tenants.location(b), sql)[0]) for b in buckets]


@pytest.mark.parametrize("confinement", [FolderTenantDatabases, SessionPerTenant], ids=["alias", "session"])
@pytest.mark.parametrize(("name", "sql", "expected"), CROSS_TENANT, ids=[c[0] for c in CROSS_TENANT])
def test_a_tenant_cannot_reach_the_tenants_running_beside_it(
    name: str, sql: str, expected: str, confinement: type[FolderTenantDatabases], tenants: TenantDatabases,
    buckets: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """K tenants at once, the guard bypassed, each query naming `other`, which runs in the same batch
    beside them: every tenant but `other` itself fails where the query runs (its sandbox allows its own
    tenant only); harmless look-alikes give each tenant its own rows."""
    other, neighbours = buckets[0], buckets[1:K]
    batch = [neighbours[0], other, *neighbours[1:]]
    backend = confinement(tenants.template)
    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    text = render(sql, backend, neighbours[0], other)
    outcomes, tables = run_batch(batch, backend, text, 100, None, TIMEOUT, concurrency=K, **LIMITS)
    assert [o.bucket for o in outcomes] == batch
    if expected == "harmless":
        assert [o.status for o in outcomes] == ["ok"] * K, outcomes
        rows = sorted((tuple(r.values()) for t in tables for r in t.to_pylist()), key=str)
        assert rows == sorted(((b, *r) for b in batch for r in direct(tenants.location(b), text)), key=str)
        return
    for outcome in outcomes:
        if outcome.bucket != other:
            assert outcome.status == "error", outcomes
    assert {r["_bucket"] for t in tables for r in t.to_pylist()} <= {other}


@pytest.fixture(scope="module")
def sized_tenants(tmp_path_factory: pytest.TempPathFactory) -> FolderTenantDatabases:
    """Tenants whose one row `n` says how much work the query below gives them."""
    folder = tmp_path_factory.mktemp("sized")
    for bucket, n in (("a", 3), ("slow", 10**12), ("b", 4), ("huge", 2_000_000_000), ("c", 5), ("d", 6)):
        with duckdb.connect(str(folder / f"warehouse_{bucket}.duckdb")) as con:
            con.execute(f"CREATE TABLE t AS SELECT {n}::BIGINT AS n")
    return FolderTenantDatabases(str(folder / "warehouse_{bucket}.duckdb"))


def test_a_killed_tenant_leaves_its_neighbours_results_intact(sized_tenants: FolderTenantDatabases,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`slow` runs past its timeout, `huge` (one lpad DuckDB cannot interrupt) past its memory or its
    timeout: each is killed alone, while the tenants running beside them finish with their rows."""
    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    batch = ["a", "slow", "b", "huge", "c", "d"]
    sql = ("SELECT n, CASE WHEN n = 2000000000 THEN length(lpad('x', n::INTEGER, 'y')) "
           "ELSE (SELECT count(*) FROM range(n)) END AS work FROM t")
    outcomes, tables = run_batch(batch, sized_tenants, sql, 10, None, 1.0, concurrency=K, **LIMITS)
    by_bucket = {o.bucket: o for o in outcomes}
    assert [o.bucket for o in outcomes] == batch
    for killed in ("slow", "huge"):
        assert by_bucket[killed].status == "error", outcomes
        assert (by_bucket[killed].message or "").startswith("Query exceeded the"), outcomes
    rows = {r["_bucket"]: (r["n"], r["work"]) for t in tables for r in t.to_pylist()}
    assert rows == {"a": (3, 3), "b": (4, 4), "c": (5, 5), "d": (6, 6)}


def test_a_batch_stopped_midway_stops_every_slot_s_worker(sized_tenants: FolderTenantDatabases,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The job is cancelled as the first tenant finishes (progress raises): the tenants still running
    beside it (a minute's work each) are stopped with their workers at once; only a worker that had
    finished its slot's tenants may be kept idle."""
    import multiprocessing
    import time

    class Cancelled(Exception):
        pass

    def cancel(_outcome: object) -> None:
        raise Cancelled()

    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    query_workers.stop_idle_workers()
    sql = "SELECT n, (SELECT count(*) FROM range(n)) AS work FROM t"
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_batch(["a", "slow", "slow", "slow"], sized_tenants, sql, 10, None, 60, cancel, concurrency=K, **LIMITS)
    assert time.monotonic() - started < 45  # the slow tenants alone would run 60 s
    idle = {worker.process.pid for worker in query_workers._idle}
    assert len(idle) <= 1
    running = [p for p in multiprocessing.active_children() if p.is_alive() and p.pid not in idle]
    assert running == [], "a slot's worker is left running"
    query_workers.stop_idle_workers()


def test_a_slot_still_starting_its_worker_when_the_batch_stops_does_not_run_it(
        sized_tenants: FolderTenantDatabases, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slot whose worker is still being started when the job is cancelled: the stop cannot kill a
    worker it does not know of yet, so the slot must not hand it its tenants (a minute's work here)."""
    import threading
    import time

    class Cancelled(Exception):
        pass

    cancelled = threading.Event()

    def cancel(_outcome: object) -> None:
        cancelled.set()
        raise Cancelled()

    class LateWorker(query_workers.QueryWorker):
        def __init__(self, *args, **kwargs) -> None:
            if threading.current_thread().name == "query-slot-1":
                cancelled.wait(30)  # started only once the batch has been told to stop
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    monkeypatch.setattr(query_workers, "QueryWorker", LateWorker)
    query_workers.stop_idle_workers()
    sql = "SELECT n, (SELECT count(*) FROM range(n)) AS work FROM t"
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_batch(["a", "slow"], sized_tenants, sql, 10, None, 60, cancel, concurrency=2, **LIMITS)
    assert time.monotonic() - started < 30  # the slow tenant alone would run 60 s
    query_workers.stop_idle_workers()


def test_the_job_s_deadline_stops_every_slot(sized_tenants: FolderTenantDatabases,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """K slots, the job's deadline in 2 s: the quick tenants finish, the ones still running in every slot
    at the deadline are stopped and reported as such, and the batch ends soon after it."""
    import time

    from queryall.logic.worker_supervisor import DEADLINE_EXCEEDED

    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    sql = "SELECT n, (SELECT count(*) FROM range(n)) AS work FROM t"
    started = time.monotonic()
    # Slot s takes tenants s and s + 3: a quick one, then a slow one.
    outcomes, tables = run_batch(["a", "b", "c", "slow", "slow", "slow"], sized_tenants, sql, 10, None, 60,
                                 concurrency=3, deadline=time.time() + 2, **LIMITS)
    assert time.monotonic() - started < 30
    assert [(o.bucket, o.status) for o in outcomes[:3]] == [("a", "ok"), ("b", "ok"), ("c", "ok")], outcomes
    assert all(o.status == "error" and o.message == DEADLINE_EXCEEDED for o in outcomes[3:]), outcomes
    assert {r["_bucket"]: r["work"] for t in tables for r in t.to_pylist()} == {"a": 3, "b": 4, "c": 5}
