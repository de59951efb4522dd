"""Running a batch's query on its tenants: what comes back, in which types, and from which worker."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from queryall.dal.tenant_databases import FolderTenantDatabases, S3TenantDatabases, TenantDatabases
from queryall.logic import query_workers
from queryall.logic.query_workers import run_batch
from tests.conftest import CORRUPT_BUCKET

pytestmark = pytest.mark.timeout(120)
LIMITS = {"memory_limit_mb": 256, "threads": 1}


@pytest.fixture(scope="module")
def buckets(tenants: TenantDatabases) -> list[str]:
    return [t.bucket for t in tenants.list_tenants() if t.bucket != CORRUPT_BUCKET][:3]


def test_types_arrow_cannot_carry_come_back_as_their_text(tenants: TenantDatabases, buckets: list[str]) -> None:
    sql = ("SELECT 340282366920938463463374607431768211455::UHUGEINT AS \"big \"\"u\"\"\", "
           "'0101'::BIT AS bits, count(*) AS people FROM person")
    outcomes, tables = run_batch(buckets, tenants, sql, 10, None, 10, **LIMITS)
    assert [o.status for o in outcomes] == ["ok"] * len(buckets)
    [table] = tables
    assert table.schema.names == ["_bucket", 'big "u"', "bits", "people"]
    assert table.schema.field('big "u"').type == pa.string()
    assert table.column('big "u"').to_pylist() == ["340282366920938463463374607431768211455"] * len(buckets)
    assert table.column("bits").to_pylist() == ["0101"] * len(buckets)
    assert table.schema.field("people").type == pa.int64()


# ------------------------------------------------------------------------- workers kept between batches

COUNT = "SELECT count(*) AS people FROM person"


def idle_pids() -> list[int]:
    return [worker.process.pid for worker in query_workers._idle]


@pytest.fixture
def no_idle_workers():
    query_workers.stop_idle_workers()
    yield
    query_workers.stop_idle_workers()


def _people(tables: list[pa.Table]) -> dict[str, int]:
    return {row["_bucket"]: row["people"] for table in tables for row in table.to_pylist()}


def _direct_people(tenants: TenantDatabases, buckets: list[str]) -> dict[str, int]:
    return {b: duckdb.connect(tenants.location(b), read_only=True).execute(COUNT).fetchone()[0] for b in buckets}


def _assert_every_tenant_counted(outcomes: list, tables: list[pa.Table], tenants: TenantDatabases,
                                 buckets: list[str]) -> None:
    assert [(o.bucket, o.status) for o in outcomes] == [(b, "ok") for b in buckets], outcomes
    assert _people(tables) == _direct_people(tenants, buckets)


def test_the_next_batch_runs_in_the_worker_the_last_one_left(
    tenants: TenantDatabases, buckets: list[str], no_idle_workers: None
) -> None:
    first, second = buckets[:1], buckets[1:]
    outcomes, tables = run_batch(first, tenants, COUNT, 10, None, 10, **LIMITS)
    [pid] = idle_pids()
    outcomes, tables = run_batch(second, tenants, COUNT, 10, None, 10, **LIMITS)
    assert [o.status for o in outcomes] == ["ok"] * len(second)
    assert idle_pids() == [pid]
    assert _people(tables) == _direct_people(tenants, second)


def test_a_worker_is_kept_only_for_batches_with_the_same_backend_and_limits(
    tenants: TenantDatabases, buckets: list[str], no_idle_workers: None
) -> None:
    run_batch(buckets[:1], tenants, COUNT, 10, None, 10, **LIMITS)
    run_batch(buckets[:1], tenants, COUNT, 10, None, 10, memory_limit_mb=300, threads=1)
    run_batch(buckets[:1], tenants, COUNT, 10, None, 5, **LIMITS)
    keys = [worker.key for worker in query_workers._idle]
    assert len(set(idle_pids())) == 3 and len(set(keys)) == 3
    assert sorted((k.memory_limit_mb, k.timeout_seconds) for k in keys) == [(256, 5), (256, 10), (300, 10)]


def test_a_worker_killed_in_a_batch_is_not_kept_and_the_next_batch_gets_a_fresh_one(
    tenants: TenantDatabases, buckets: list[str], no_idle_workers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_batch(buckets[:1], tenants, COUNT, 10, None, 1, **LIMITS)
    [before] = idle_pids()
    # One scalar call DuckDB cannot interrupt: the worker is killed past the timeout or the memory limit.
    monkeypatch.setattr(query_workers, "check_read_only_select", lambda text: text)
    outcomes, _ = run_batch(buckets[:2], tenants, "SELECT length(lpad('x', 2000000000, 'y')) AS people", 10,
                            None, 1, **LIMITS)
    assert outcomes[0].status == "error" and outcomes[0].message.startswith("Query exceeded the"), outcomes
    monkeypatch.undo()
    outcomes, tables = run_batch(buckets, tenants, COUNT, 10, None, 1, **LIMITS)
    assert [o.status for o in outcomes] == ["ok"] * len(buckets)
    assert _people(tables) == _direct_people(tenants, buckets)
    assert before not in idle_pids() and len(idle_pids()) == 1


def test_a_worker_that_ended_while_idle_is_replaced_at_no_tenant_s_cost(
    tenants: TenantDatabases, buckets: list[str], no_idle_workers: None
) -> None:
    run_batch(buckets[:1], tenants, COUNT, 10, None, 10, **LIMITS)
    [worker] = query_workers._idle
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.join(10)
    outcomes, tables = run_batch(buckets, tenants, COUNT, 10, None, 10, **LIMITS)
    assert [o.status for o in outcomes] == ["ok"] * len(buckets)
    assert _people(tables) == _direct_people(tenants, buckets)
    assert not Path(worker.alias_folder).exists()  # the dead worker's folder went with it


def test_a_batch_stopped_midway_stops_its_worker(
    tenants: TenantDatabases, buckets: list[str], no_idle_workers: None
) -> None:
    class Cancelled(Exception):
        pass

    def cancel(_outcome: object) -> None:
        raise Cancelled()

    with pytest.raises(Cancelled):
        run_batch(buckets, tenants, COUNT, 10, None, 10, on_tenant=cancel, **LIMITS)
    assert idle_pids() == []


def test_a_worker_that_grew_is_retired_after_its_batch(
    tenants: TenantDatabases, buckets: list[str], no_idle_workers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_workers, "_RETIRE_GROWTH", -1.0)  # any size counts as grown
    outcomes, _ = run_batch(buckets, tenants, COUNT, 10, None, 10, **LIMITS)
    assert [o.status for o in outcomes] == ["ok"] * len(buckets)
    assert idle_pids() == []


def test_an_idle_worker_ends_when_the_process_that_started_it_is_gone(
    tenants: TenantDatabases, buckets: list[str], tmp_path: Path, no_idle_workers: None
) -> None:
    pid_file = tmp_path / "worker.pid"

    def start_a_worker_and_vanish() -> None:
        run_batch(buckets[:1], tenants, COUNT, 10, None, 10, **LIMITS)
        pid_file.write_text(str(query_workers._idle[0].process.pid))
        os._exit(0)  # no atexit: the worker is left behind

    parent = multiprocessing.get_context("fork").Process(target=start_a_worker_and_vanish)
    parent.start()
    parent.join(60)
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(worker):
        time.sleep(0.1)
    assert not _running(worker)


def test_a_process_forked_from_one_with_idle_workers_starts_its_own_and_leaves_them_be(
    tenants: TenantDatabases, buckets: list[str], tmp_path: Path, no_idle_workers: None
) -> None:
    run_batch(buckets[:1], tenants, COUNT, 10, None, 10, **LIMITS)
    [inherited] = idle_pids()
    report = tmp_path / "child.txt"

    def child() -> None:
        outcomes, tables = run_batch(buckets, tenants, COUNT, 10, None, 10, **LIMITS)
        mine = idle_pids()
        query_workers.stop_idle_workers()  # its own worker only
        report.write_text(json.dumps([[o.status for o in outcomes], _people(tables), mine]))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    statuses, people, mine = json.loads(report.read_text())
    assert statuses == ["ok"] * len(buckets) and people == _direct_people(tenants, buckets)
    assert mine != [inherited] and len(mine) == 1
    assert idle_pids() == [inherited] and _running(inherited)  # the parent's worker, untouched


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_worker_key_changes_with_the_credentials_and_never_holds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def key_with(secret: str) -> query_workers.WorkerKey:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return query_workers.WorkerKey.of(S3TenantDatabases("s3://tenants/warehouse_{bucket}.duckdb"), 10, 256, 1)

    first, again, rotated = key_with("first-secret"), key_with("first-secret"), key_with("rotated-secret")
    assert first == again and first != rotated  # new credentials: a new worker and session
    assert "first-secret" not in repr(first) and "first-secret" not in str(vars(first))


def test_a_worker_killed_from_outside_costs_its_tenant_an_error_and_nothing_hangs(
    tenants: TenantDatabases, buckets: list[str], no_idle_workers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = buckets[0]
    run = query_workers.TenantQueryRunner.run

    def stuck_on_the_first(self, bucket: str, *args, **kwargs):  # runs in the forked worker
        if bucket == first:
            time.sleep(120)
        return run(self, bucket, *args, **kwargs)

    monkeypatch.setattr(query_workers.TenantQueryRunner, "run", stuck_on_the_first)
    victims: list[int] = []
    before = _children()

    def kill_the_worker_once_it_is_stuck() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            started = _children() - before
            if started:
                time.sleep(1.0)  # well into the first tenant
                victims.extend(started)
                for pid in started:
                    os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_worker_once_it_is_stuck, daemon=True)
    killer.start()
    started = time.monotonic()
    outcomes, tables = run_batch(buckets, tenants, COUNT, 10, None, 60, **LIMITS)
    assert time.monotonic() - started < 30  # not the 120 s the stuck tenant would take, nor forever
    assert victims
    assert (outcomes[0].bucket, outcomes[0].status) == (first, "error")
    assert outcomes[0].message == "Query process ended unexpectedly (exit code -9)"
    assert [o.status for o in outcomes[1:]] == ["ok"] * (len(buckets) - 1)
    assert _people(tables) == _direct_people(tenants, buckets[1:])


def _children() -> set[int]:
    """This process's child processes (the query workers it started)."""
    found: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        found.update(int(pid) for pid in children.read_text().split())
    return found


# ---------------------------------------------------------------- a tenant's timeout counts from its query


class SlowToOpen(FolderTenantDatabases):
    """Opening a tenant's database stalls (as on a busy machine, or on a lock the worker inherited):
    for `stall` seconds, or forever, for the `hangs` first tries, counted in `marker` across workers."""

    def __init__(self, template: str, marker: Path, stall: float, hangs: int) -> None:
        super().__init__(template)
        self.marker, self.stall, self.hangs = marker, stall, hangs

    def use(self, connection, bucket: str, location: str | None) -> str:
        tries = len(self.marker.read_text()) if self.marker.exists() else 0
        self.marker.write_text("x" * (tries + 1))
        if tries < self.hangs:
            time.sleep(self.stall)
        return super().use(connection, bucket, location)


def test_a_stall_before_the_tenant_s_query_does_not_cost_it_its_timeout(
    tenants: TenantDatabases, buckets: list[str], tmp_path: Path, no_idle_workers: None,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The query's timeout (0.5 s, and the grace before the worker is killed) counts from the moment the
    query starts, not from when the worker began opening the tenant's database (2 s here)."""
    monkeypatch.setattr(query_workers, "_KILL_GRACE_SECONDS", 0.2)
    slow = SlowToOpen(tenants.template, tmp_path / "opened", stall=2.0, hangs=1)
    outcomes, tables = run_batch(buckets, slow, COUNT, 10, None, 0.5, **LIMITS)
    _assert_every_tenant_counted(outcomes, tables, tenants, buckets)


def _run_with_hanging_opens(tenants: TenantDatabases, buckets: list[str], tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch, hangs: int) -> tuple[list, list[pa.Table]]:
    """The batch with a 0.5 s open timeout, where the first ``hangs`` opens of a database never end."""
    monkeypatch.setattr(query_workers, "_OPEN_TIMEOUT_SECONDS", 0.5)
    slow = SlowToOpen(tenants.template, tmp_path / "opened", stall=60, hangs=hangs)
    return run_batch(buckets, slow, COUNT, 10, None, 10, **LIMITS)


def test_a_database_that_does_not_open_in_time_is_tried_again_in_a_fresh_worker(
    tenants: TenantDatabases, buckets: list[str], tmp_path: Path, no_idle_workers: None,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes, tables = _run_with_hanging_opens(tenants, buckets, tmp_path, monkeypatch, hangs=1)
    _assert_every_tenant_counted(outcomes, tables, tenants, buckets)
    assert len((tmp_path / "opened").read_text()) == len(buckets) + 1  # the first tenant, twice


def test_a_database_that_never_opens_costs_its_tenant_alone_an_error(
    tenants: TenantDatabases, buckets: list[str], tmp_path: Path, no_idle_workers: None,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    outcomes, tables = _run_with_hanging_opens(tenants, buckets, tmp_path, monkeypatch, hangs=2)
    assert time.monotonic() - started < 20
    assert (outcomes[0].bucket, outcomes[0].status) == (buckets[0], "error"), outcomes
    assert outcomes[0].message == "Could not open the database within 0.5 s"
    assert [o.status for o in outcomes[1:]] == ["ok"] * (len(buckets) - 1), outcomes
    assert _people(tables) == _direct_people(tenants, buckets[1:])
