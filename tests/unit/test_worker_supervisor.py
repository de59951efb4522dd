"""The supervisor's decisions about a batch's tenants and workers, from messages, the clock and the
worker's memory alone: no process is forked here (the processes are tested in test_tenant_query)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from queryall.logic import worker_protocol as wp
from queryall.logic.worker_supervisor import (
    FOLLOW,
    SESSION_NOT_STARTED,
    BatchSupervisor,
    Decision,
    Stage,
    SupervisionLimits,
    WorkerWatch,
)
from queryall.models.workflow import TenantOutcome

MB = 1024 * 1024
LIMITS = SupervisionLimits(timeout_seconds=30, memory_limit_mb=256, setup_timeout_seconds=20,
                           open_timeout_seconds=10, kill_grace_seconds=2, retire_growth=0.25, setup_attempts=3)
HARD = LIMITS.hard_memory_bytes  # 576 MiB for 256 MB
BASE = 100 * MB


def rss_of(value: int | None):
    return lambda: value


def done(bucket: str, rows: pa.Table | None = None) -> wp.TenantDone:
    return wp.TenantDone.of(TenantOutcome(bucket=bucket, status="ok", rows=0 if rows is None else rows.num_rows), rows)


def ready_watch(batch: BatchSupervisor, now: float = 0.0) -> WorkerWatch:
    """A worker kept from an earlier batch (ready, BASE bytes big) taking this batch at `now`."""
    return batch.watch(now, started=-100.0, ready_rss=BASE, rss=BASE)


def querying(bucket: str = "a", at: float = 0.0) -> tuple[BatchSupervisor, WorkerWatch]:
    batch = BatchSupervisor([bucket, "b"], LIMITS)
    watch = ready_watch(batch, at)
    watch.received(wp.TenantStarted(bucket), at, rss_of(BASE))
    watch.received(wp.QueryStarted(bucket), at + 1, rss_of(BASE))
    return batch, watch


def test_the_hard_memory_limit_leaves_room_past_duckdb_s_own() -> None:
    assert int(256 * 1.25 + 256) * MB == HARD


def test_the_messages_survive_the_pipe() -> None:
    import pickle

    rows = pa.table({"n": [1, 2]})
    for message in (wp.RunBatch(("a", "b"), "SELECT 1", 10, None), wp.Ready(), wp.Fatal("no"), wp.TenantStarted("a"),
                    wp.QueryStarted("a"), done("a", rows), wp.BatchEnd()):
        assert pickle.loads(pickle.dumps(message)) == message
    assert done("a", rows).rows().equals(rows) and done("a").rows() is None
    assert done("a", rows).outcome() == TenantOutcome(bucket="a", status="ok", rows=2)


# --------------------------------------------------------------------------------------- one worker


def test_a_finished_tenant_is_delivered_and_taken_off_the_batch() -> None:
    batch, watch = querying()
    message = done("a", pa.table({"n": [1]}))
    decision = watch.received(message, 2, rss_of(BASE))
    assert decision == Decision(results=((message.outcome(), message.rows_ipc),))
    assert batch.remaining == ["b"] and watch.stage is Stage.BETWEEN


def test_a_query_within_its_timeout_and_grace_is_left_alone() -> None:
    _, watch = querying(at=0)
    assert watch.tick(1 + 30 + 2, rss_of(BASE)) == FOLLOW


def test_the_timeout_counts_from_the_query_start_not_from_the_database_opening() -> None:
    """A tenant whose database took 9 s to open (a busy machine) still has its whole 30 s query budget."""
    batch = BatchSupervisor(["a"], LIMITS)
    watch = ready_watch(batch)
    watch.received(wp.TenantStarted("a"), 0, rss_of(BASE))
    assert watch.tick(9, rss_of(BASE)) == FOLLOW
    watch.received(wp.QueryStarted("a"), 9, rss_of(BASE))
    assert watch.tick(9 + 31, rss_of(BASE)) == FOLLOW
    decision = watch.tick(9 + 32.5, rss_of(BASE))
    assert decision.kill and decision.stop and not decision.reusable
    [(outcome, rows)] = decision.results
    assert (outcome.bucket, outcome.status, outcome.message) == ("a", "error", "Query exceeded the 30 s timeout")
    assert outcome.duration_ms == pytest.approx(41_500) and rows is None and batch.remaining == []


def test_a_worker_kept_idle_gets_no_setup_deadline_from_its_old_fork_time() -> None:
    batch = BatchSupervisor(["a"], LIMITS)
    watch = batch.watch(1000.0, started=0.0, ready_rss=BASE, rss=BASE)
    assert watch.stage is Stage.BETWEEN and watch.tick(1001, rss_of(BASE)) == FOLLOW


def test_a_tenant_that_grows_past_the_hard_limit_is_killed() -> None:
    batch, watch = querying()
    assert watch.tick(2, rss_of(BASE + HARD)) == FOLLOW
    decision = watch.tick(2, rss_of(BASE + HARD + 1))
    assert decision.kill and decision.stop
    assert decision.results[0][0].message == "Query exceeded the 256 MB memory limit"
    assert batch.remaining == ["b"]


def test_growth_counts_from_the_worker_s_size_when_its_session_got_ready() -> None:
    batch = BatchSupervisor(["a"], LIMITS)
    watch = batch.watch(0, started=0, ready_rss=None, rss=None)
    watch.received(wp.Ready(), 0.1, rss_of(BASE))
    watch.received(wp.TenantStarted("a"), 0.2, rss_of(BASE))
    assert watch.tick(0.3, rss_of(BASE + HARD)) == FOLLOW
    assert watch.tick(0.3, rss_of(BASE + HARD + 1)).kill


def test_a_worker_not_ready_in_time_is_replaced_at_no_tenant_s_cost() -> None:
    batch = BatchSupervisor(["a"], LIMITS)
    watch = batch.watch(5, started=0, ready_rss=None, rss=None)
    assert watch.tick(20, rss_of(None)) == FOLLOW
    assert watch.tick(20.1, rss_of(None)) == Decision(kill=True, stop=True)
    assert batch.remaining == ["a"]


def test_a_database_that_does_not_open_in_time_is_retried_once_in_a_fresh_worker() -> None:
    batch = BatchSupervisor(["a", "b"], LIMITS)
    for _ in range(2):  # the first worker, then the fresh one
        watch = ready_watch(batch)
        watch.received(wp.TenantStarted("a"), 0, rss_of(BASE))
        assert watch.tick(10, rss_of(BASE)) == FOLLOW
        decision = watch.tick(10.5, rss_of(BASE))
        assert decision.kill and decision.stop
    assert decision.results[0][0].message == "Could not open the database within 10 s"
    assert batch.remaining == ["b"]


def test_a_worker_silent_between_tenants_is_replaced_at_no_tenant_s_cost() -> None:
    batch = BatchSupervisor(["a"], LIMITS)
    watch = ready_watch(batch)
    assert watch.tick(10.5, rss_of(BASE)) == Decision(kill=True, stop=True)
    assert batch.remaining == ["a"]


@pytest.mark.parametrize("stage", ["opening", "querying"])
def test_a_worker_that_ends_while_a_tenant_runs_costs_that_tenant_an_error(stage: str) -> None:
    batch = BatchSupervisor(["a", "b"], LIMITS)
    watch = ready_watch(batch)
    watch.received(wp.TenantStarted("a"), 0, rss_of(BASE))
    if stage == "querying":
        watch.received(wp.QueryStarted("a"), 0, rss_of(BASE))
    decision = watch.ended(1, -9)
    assert decision.stop and not decision.kill
    assert decision.results[0][0].message == "Query process ended unexpectedly (exit code -9)"
    assert batch.remaining == ["b"]


def test_a_worker_that_ends_between_tenants_costs_nothing() -> None:
    batch, watch = querying()
    watch.received(done("a"), 2, rss_of(BASE))
    assert watch.ended(3, -9) == Decision(stop=True) and batch.remaining == ["b"]


def test_a_session_that_cannot_start_fails_every_tenant_left() -> None:
    batch = BatchSupervisor(["a", "b"], LIMITS)
    watch = batch.watch(0, started=0, ready_rss=None, rss=None)
    decision = watch.received(wp.Fatal("Could not start the query session: no token"), 0.1, rss_of(None))
    assert decision.stop and not decision.reusable
    assert [(o.bucket, o.message) for o, _ in decision.results] == [
        ("a", "Could not start the query session: no token"), ("b", "Could not start the query session: no token")]
    assert batch.remaining == []


# ------------------------------------------------------------------------------- reuse and retire


def test_a_worker_that_finished_its_batch_and_grew_little_is_reused() -> None:
    _, watch = querying()
    watch.received(done("a"), 2, rss_of(BASE))
    assert watch.received(wp.BatchEnd(), 3, rss_of(BASE + HARD // 4)) == Decision(stop=True, reusable=True)


def test_a_worker_that_grew_is_retired_after_its_batch() -> None:
    _, watch = querying()
    watch.received(done("a"), 2, rss_of(BASE))
    assert watch.received(wp.BatchEnd(), 3, rss_of(BASE + HARD // 4 + 1)) == Decision(stop=True, reusable=False)


def test_a_worker_whose_size_cannot_be_read_is_retired() -> None:
    _, watch = querying()
    assert watch.received(wp.BatchEnd(), 3, rss_of(None)) == Decision(stop=True, reusable=False)


# ------------------------------------------------------------------------------------ across workers


def test_a_batch_fails_only_after_several_workers_in_a_row_finish_no_tenant() -> None:
    batch = BatchSupervisor(["a", "b"], LIMITS)
    assert batch.worker_stopped(left_before=2) == []
    assert batch.worker_stopped(left_before=2) == []
    failed = batch.worker_stopped(left_before=2)
    assert [(o.bucket, o.status, o.message) for o, _ in failed] == [
        ("a", "error", SESSION_NOT_STARTED), ("b", "error", SESSION_NOT_STARTED)]
    assert batch.remaining == []


def test_a_worker_that_finished_a_tenant_resets_the_count_of_stalled_ones() -> None:
    batch, watch = querying()
    batch.worker_stopped(left_before=2)
    batch.worker_stopped(left_before=2)
    watch.received(done("a"), 2, rss_of(BASE))
    assert batch.worker_stopped(left_before=2) == []  # one tenant done
    assert batch.worker_stopped(left_before=1) == [] and batch.worker_stopped(left_before=1) == []
    assert len(batch.worker_stopped(left_before=1)) == 1


def test_time_the_caller_spends_with_a_delivered_tenant_is_not_the_worker_s() -> None:
    batch, watch = querying()
    watch.received(done("a"), 2, rss_of(BASE))
    watch.resumed(40)  # the caller wrote progress for 38 s
    assert watch.tick(41, rss_of(BASE)) == FOLLOW
    assert watch.tick(50.5, rss_of(BASE)) == Decision(kill=True, stop=True) and batch.remaining == ["b"]
