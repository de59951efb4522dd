"""A batch stops at its job's deadline and after a run of per-tenant timeouts (the circuit breaker), at
the logic level: real worker processes over the seeded DuckDB tenant files."""

from __future__ import annotations

import time

import pytest

from queryall.dal.tenant_databases import TenantDatabases
from queryall.logic.query_workers import run_batch
from queryall.logic.worker_supervisor import (
    BREAKER_TIMEOUTS,
    BatchSupervisor,
    SupervisionLimits,
    timeout_message,
)
from queryall.models.workflow import DEADLINE_EXCEEDED, TenantOutcome
from tests.conftest import CORRUPT_BUCKET

pytestmark = pytest.mark.timeout(120)

LIMITS = {"memory_limit_mb": 256, "threads": 1}
FAST = "SELECT count(*) AS n FROM person"


def cpu_bound(rows: int) -> str:
    return f"SELECT count(*) AS n FROM range({rows}) t(i) WHERE hash(i) % 1000 = 0"


@pytest.fixture(scope="module")
def buckets(tenants: TenantDatabases) -> list[str]:
    return sorted(t.bucket for t in tenants.list_tenants() if t.bucket != CORRUPT_BUCKET)


def test_a_batch_stops_at_the_deadline_with_the_tenants_it_finished(tenants: TenantDatabases,
                                                                      buckets: list[str]) -> None:
    started = time.time()
    # Each tenant's query takes a good part of a second; 30 of them are far more than the 2 s allowed.
    outcomes, tables = run_batch(buckets[:30], tenants, cpu_bound(40_000_000), 10, None, 20,
                                 deadline=started + 2.0, **LIMITS)
    elapsed = time.time() - started
    assert 1.9 <= elapsed <= 3.0, elapsed  # stopped at the deadline: the running query too
    assert [o.bucket for o in outcomes] == buckets[:30]  # every tenant reported, in order
    done = [o for o in outcomes if o.status == "ok"]
    cut = [o for o in outcomes if o.message == DEADLINE_EXCEEDED]
    assert done and cut and len(done) + len(cut) == 30
    assert sum(t.num_rows for t in tables) == len(done)  # the finished tenants' rows are kept
    assert outcomes.index(cut[0]) == len(done)  # tenants ran in order: the first ones finished


def test_a_batch_past_its_deadline_starts_no_tenant(tenants: TenantDatabases, buckets: list[str]) -> None:
    started = time.monotonic()
    outcomes, tables = run_batch(buckets[:5], tenants, FAST, 10, None, 20, deadline=time.time() - 1, **LIMITS)
    assert time.monotonic() - started < 0.5
    assert [(o.status, o.message) for o in outcomes] == [("error", DEADLINE_EXCEEDED)] * 5 and tables == []


def test_the_circuit_breaker_skips_the_rest_after_a_run_of_timeouts(tenants: TenantDatabases,
                                                                    buckets: list[str]) -> None:
    started = time.monotonic()
    outcomes, _ = run_batch(buckets[:20], tenants, cpu_bound(10_000_000_000), 10, None, 0.3, **LIMITS)
    elapsed = time.monotonic() - started
    timed_out = outcomes[:BREAKER_TIMEOUTS]
    assert all(o.message == "Query exceeded the 0.3 s timeout" for o in timed_out), timed_out
    skipped = outcomes[BREAKER_TIMEOUTS:]
    assert len(skipped) == 20 - BREAKER_TIMEOUTS
    assert {o.message for o in skipped} == {
        f"Skipped: circuit open ({BREAKER_TIMEOUTS} tenants in a row exceeded the 0.3 s timeout)"}
    # Three timeouts, not twenty.
    assert elapsed < 20 * 0.3, elapsed


def test_a_finished_tenant_closes_the_breaker() -> None:
    limits = SupervisionLimits(timeout_seconds=1, memory_limit_mb=64, setup_timeout_seconds=1, open_timeout_seconds=1,
                               kill_grace_seconds=1, retire_growth=0.25, setup_attempts=3)
    batch = BatchSupervisor([f"t{i}" for i in range(8)], limits)

    def finish(status: str, message: str | None = None) -> None:
        batch.finished(TenantOutcome(bucket=batch.remaining[0], status=status, message=message), None)

    for _ in range(BREAKER_TIMEOUTS - 1):
        finish("error", timeout_message(1))
    finish("ok")  # an answer in time: the run of timeouts starts again
    for _ in range(BREAKER_TIMEOUTS - 1):
        finish("error", timeout_message(1))
    assert batch.cut_short(0.0) == ()
    finish("error", timeout_message(1))
    cut = batch.cut_short(0.0)
    assert [outcome.bucket for outcome, _ in cut] == ["t6", "t7"] and batch.remaining == []
