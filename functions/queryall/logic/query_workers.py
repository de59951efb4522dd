"""Running a batch's tenants in query worker processes the batch can stop, and keeping them for the
next batch.

DuckDB checks its interrupt between chunks and its memory_limit covers its buffers only: one scalar
call (`lpad('x', 2e9)`, `to_json(range(3e7))`) can run on for a minute past both and take gigabytes.
So tenants' queries run in a forked worker process that the caller can kill: when its tenant runs
too long past the timeout, or the worker grows past the memory limit by too much. A killed worker
costs its tenant an error, and a new worker takes the tenants after it. This module owns the
processes and the pool; what the worker says is `worker_protocol`, and what the batch decides on
hearing it (or on hearing nothing for too long) is `worker_supervisor`.

A worker outlives its batch: starting one (fork, a DuckDB instance, its sandbox, httpfs or the
MotherDuck connection) costs 40 ms or more, as much as a dozen tenants' queries, and a warm Lambda
runs batch after batch. An idle worker is kept for the next batch with the same backend and limits
(`WorkerKey`), and its sandboxed session serves that batch's tenants as it served the last one's:
each tenant is still attached, queried and detached alone (`TenantQueryRunner`), so nothing of one
tenant is in reach of the next, whichever batch or job they belong to. A worker that was stopped in
the middle of a batch, or grew while it ran, is never reused.
"""

from __future__ import annotations

import atexit
import hashlib
import multiprocessing
import os
import queue
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection

import pyarrow as pa

from queryall.dal.tenant_databases import TenantDatabases
from queryall.logic.sql_guard import SqlRejected, check_read_only_select
from queryall.logic.tenant_query import TenantQueryRunner, short_error
from queryall.logic.worker_protocol import (
    BatchEnd,
    Fatal,
    QueryStarted,
    Ready,
    RunBatch,
    TenantDone,
    TenantStarted,
    read_rows,
)
from queryall.logic.worker_supervisor import BatchSupervisor, SupervisionLimits
from queryall.models.workflow import TenantOutcome

_KILL_GRACE_SECONDS = 2.0
_POLL_SECONDS = 0.05
# A worker forked while another thread of the parent was inside DuckDB (the local stack runs every
# function in one process) can inherit a lock that is never released and hang before its session is
# ready. Setup takes milliseconds (seconds for MotherDuck), so a worker that is not ready in time is
# replaced, and only after a few such attempts are the batch's tenants reported as failed.
_SETUP_TIMEOUT_SECONDS = 20.0
_SETUP_ATTEMPTS = 3
# Opening a tenant's database (ATTACH) takes milliseconds, more from S3 or MotherDuck; it has its own
# limit, apart from the query's, and a tenant over it is tried again once in a fresh worker (one that
# hangs on an inherited lock would never open it).
_OPEN_TIMEOUT_SECONDS = 20.0
# Idle workers kept in this process: a Lambda runs one batch at a time (one worker); the local stack
# runs one per workflow slot. Beyond this the longest idle is stopped.
_MAX_IDLE_WORKERS = 4
# A worker whose memory grew by more than this share of the hard limit over its life is retired
# after its batch, so that what DuckDB or the allocator keeps never eats into a later tenant's room.
_RETIRE_GROWTH = 0.25
# How often an idle worker checks that the process that started it is still there.
_PARENT_CHECK_SECONDS = 1.0


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class WorkerKey:
    """What a worker's session was made for: a batch with the same key can use it."""

    backend: str
    identity: str  # TenantDatabases.worker_identity(): the URI template and what else shapes a session
    # A digest of the session's setup statements (credentials, endpoint, token: a change needs a new
    # session), so that no secret is kept or printed with the key.
    setup_digest: str
    timeout_seconds: float
    memory_limit_mb: int
    threads: int

    @classmethod
    def of(cls, tenants: TenantDatabases, timeout_seconds: float, memory_limit_mb: int, threads: int) -> WorkerKey:
        setup = hashlib.sha256("\0".join(tenants.session_setup()).encode()).hexdigest()
        return cls(type(tenants).__qualname__, tenants.worker_identity(), setup, float(timeout_seconds),
                   int(memory_limit_mb), int(threads))


def _limits(key: WorkerKey) -> SupervisionLimits:
    # Read when a batch starts, so that a test may change them.
    return SupervisionLimits(timeout_seconds=key.timeout_seconds, memory_limit_mb=key.memory_limit_mb,
                             setup_timeout_seconds=_SETUP_TIMEOUT_SECONDS, open_timeout_seconds=_OPEN_TIMEOUT_SECONDS,
                             kill_grace_seconds=_KILL_GRACE_SECONDS, retire_growth=_RETIRE_GROWTH,
                             setup_attempts=_SETUP_ATTEMPTS)


def _serve(commands: Connection, tenants: TenantDatabases, key: WorkerKey, alias_folder: str | None) -> None:
    """Worker process: sandbox a DuckDB session, then run each batch it is sent, reporting each tenant
    as it goes (`worker_protocol`). Ends when its parent closes the pipe or is gone."""
    parent = os.getppid()
    try:
        runner = TenantQueryRunner(tenants, key.timeout_seconds, key.memory_limit_mb, key.threads, alias_folder)
    except BaseException as error:  # the parent reports it for every tenant
        commands.send(Fatal(f"Could not start the query session: {short_error(error)}"))
        return
    commands.send(Ready())
    while True:
        if not commands.poll(_PARENT_CHECK_SECONDS):
            if os.getppid() != parent:
                return
            continue
        try:
            batch: RunBatch = commands.recv()
        except EOFError:
            return
        for bucket in batch.buckets:
            commands.send(TenantStarted(bucket))
            outcome, rows = runner.run(bucket, batch.sql, batch.limit, batch.table,
                                       on_query_started=lambda bucket=bucket: commands.send(QueryStarted(bucket)))
            commands.send(TenantDone.of(outcome, rows))
        commands.send(BatchEnd())


class QueryWorker:
    """A worker process, its end of the pipe and, for the "alias" confinement, its private folder
    (made and removed here, not in the worker, so that it goes even when the worker is killed)."""

    def __init__(self, tenants: TenantDatabases, key: WorkerKey) -> None:
        self.key = key
        self.owner = os.getpid()  # a process forked from this one inherits the idle list, not the workers
        self.alias_folder = tenants.alias_folder() if tenants.confinement == "alias" else None
        context = multiprocessing.get_context("fork")  # inherits the loaded modules: no re-import
        self._pipe, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, daemon=True, args=(child, tenants, key, self.alias_folder))
        with warnings.catch_warnings():
            # The child touches only DuckDB and the pipe, never a lock another thread may hold.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.process.start()
        child.close()
        self._started = time.monotonic()
        self._ready_rss: int | None = None
        self.reusable = False

    def _rss(self) -> int | None:
        return _rss_bytes(self.process.pid or 0)

    def run(self, batch: BatchSupervisor, sql: str, limit: int,
            table: str | None) -> Iterator[tuple[TenantOutcome, pa.Table | None]]:
        """Each tenant's outcome and rows, in order, as the supervisor takes them off `batch.remaining`.
        Afterwards `reusable` says whether the worker finished the batch and may take another."""
        self.reusable = False
        watch = batch.watch(time.monotonic(), self._started, self._ready_rss,
                            self._rss() if self._ready_rss is not None else None)
        try:
            self._pipe.send(RunBatch(tuple(batch.remaining), sql, limit, table))
        except OSError:
            return  # ended while idle: the tenants go to a fresh worker at no cost
        try:
            while True:
                if self._pipe.poll(_POLL_SECONDS):
                    try:
                        message = self._pipe.recv()
                    except EOFError:  # the worker is gone (killed from outside, crashed): its pipe is closed
                        self.process.join(_KILL_GRACE_SECONDS)
                        decision = watch.ended(time.monotonic(), self.process.exitcode)
                    else:
                        decision = watch.received(message, time.monotonic(), self._rss)
                else:
                    decision = watch.tick(time.monotonic(), self._rss)
                if decision.kill:
                    self.process.kill()
                for outcome, rows in decision.results:
                    yield outcome, read_rows(rows)
                if decision.results and not decision.stop:
                    watch.resumed(time.monotonic())
                if decision.stop:
                    self.reusable = decision.reusable
                    return
        finally:
            self._ready_rss = watch.ready_rss

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self._pipe.close()
        if self.alias_folder is not None:
            shutil.rmtree(self.alias_folder, ignore_errors=True)


_idle: list[QueryWorker] = []  # longest idle first
_idle_lock = threading.Lock()


def _forget_inherited() -> None:
    """Drop (never stop) the idle workers of the process this one was forked from. Call with the lock."""
    _idle[:] = [worker for worker in _idle if worker.owner == os.getpid()]


def _take_idle(key: WorkerKey) -> QueryWorker | None:
    with _idle_lock:
        _forget_inherited()
        for index, worker in enumerate(_idle):
            if worker.key == key:
                del _idle[index]
                break
        else:
            return None
    if worker.process.is_alive():
        return worker
    worker.stop()  # ended while idle (killed from outside): a new one is started instead
    return None


def _keep_idle(worker: QueryWorker, concurrency: int = 1) -> None:
    cap = _MAX_IDLE_WORKERS * concurrency  # a batch of K concurrent tenants leaves K workers idle
    with _idle_lock:
        _forget_inherited()
        _idle.append(worker)
        evicted = _idle[:-cap] if len(_idle) > cap else []
        del _idle[: len(evicted)]
    for old in evicted:
        old.stop()


@atexit.register
def stop_idle_workers() -> None:
    """Stop every idle worker (and remove its alias folder)."""
    with _idle_lock:
        _forget_inherited()
        workers = list(_idle)
        _idle.clear()
    for worker in workers:
        worker.stop()


def _run_in_workers(buckets: list[str], tenants: TenantDatabases, sql: str, limit: int, table: str | None,
                    key: WorkerKey, deadline: float | None = None, concurrency: int = 1,
                    running: set[QueryWorker] | None = None,
                    stopping: threading.Event | None = None) -> Iterator[tuple[TenantOutcome, pa.Table | None]]:
    """Each tenant's outcome and rows, in order, from an idle worker when there is one, and from fresh
    ones after a worker stops (`worker_supervisor` decides when, and when the batch stops early).
    `running` holds the worker at work, so that another thread can stop it (a slot of a concurrent
    batch, `_run_concurrently`); once `stopping` is set no worker is given tenants."""
    batch = BatchSupervisor(buckets, _limits(key), deadline)
    while batch.remaining:
        cut = batch.cut_short(time.monotonic())  # past the deadline: no worker is started for the rest
        if cut:
            for outcome, _ in cut:
                yield outcome, None
            return
        worker = _take_idle(key) or QueryWorker(tenants, key)
        left = len(batch.remaining)
        if running is not None:
            running.add(worker)
        if stopping is not None and stopping.is_set():
            # Stopped while this worker was being started: the stop killed the workers it knew of, and
            # this one joined `running` too late for that (it is added before this check, the stop is
            # set before the stop reads `running`: one of the two always sees the other).
            if running is not None:
                running.discard(worker)
            _keep_idle(worker, concurrency)  # never given work: another batch may use it
            return
        try:
            yield from worker.run(batch, sql, limit, table)
        finally:
            if running is not None:
                running.discard(worker)
            # Closed early (the job was cancelled) or stopped: the worker is in the middle of a batch.
            if worker.reusable:
                _keep_idle(worker, concurrency)
            else:
                worker.stop()
        for outcome, _ in batch.worker_stopped(left):
            yield outcome, None


_SLOT_DONE = object()


def _run_concurrently(buckets: list[str], tenants: TenantDatabases, sql: str, limit: int, table: str | None,
                      key: WorkerKey, concurrency: int,
                      deadline: float | None = None) -> Iterator[tuple[int, TenantOutcome, pa.Table | None]]:
    """Each tenant's position in `buckets`, outcome and rows, as they finish, from up to `concurrency`
    slots at once. A slot is a thread following its own workers (`_run_in_workers`): each of its workers
    runs one tenant at a time in its own sandboxed session, with that tenant's timeout, memory limit and
    kill, so a slot's tenant never shares a session, a process or a limit with a neighbour's. Slot `s`
    takes the tenants at positions s, s + K, s + 2K… (tenants of one batch are alike, so an even split
    is as good as a shared queue, and each slot's tenants stay in order)."""
    slots = max(1, min(concurrency, len(buckets)))
    if slots == 1:
        for position, (outcome, rows) in enumerate(_run_in_workers(buckets, tenants, sql, limit, table, key,
                                                                   deadline)):
            yield position, outcome, rows
        return
    finished: queue.SimpleQueue = queue.SimpleQueue()
    stopping = threading.Event()
    running: set[QueryWorker] = set()

    def slot(first: int) -> None:
        results = _run_in_workers(buckets[first::slots], tenants, sql, limit, table, key, deadline, slots, running,
                                  stopping)
        try:
            for index, (outcome, rows) in enumerate(results):
                finished.put((first + index * slots, outcome, rows))
                if stopping.is_set():
                    break
        except BaseException as error:  # raised again in the batch's thread
            finished.put(error)
        finally:
            results.close()
            finished.put(_SLOT_DONE)

    threads = [threading.Thread(target=slot, args=(first,), name=f"query-slot-{first}", daemon=True)
               for first in range(slots)]
    for thread in threads:
        thread.start()
    try:
        done = 0
        while done < slots:
            item = finished.get()
            if item is _SLOT_DONE:
                done += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        # Closed early (the job was cancelled): the other slots' workers are stopped in the middle of
        # their tenants, as a single worker is.
        stopping.set()
        for worker in list(running):
            worker.process.kill()
        for thread in threads:
            thread.join()


def run_batch(
    buckets: list[str],
    tenants: TenantDatabases,
    sql: str,
    limit: int,
    table: str | None,
    timeout_seconds: float,
    on_tenant: Callable[[TenantOutcome], None] | None = None,
    *,
    memory_limit_mb: int,
    threads: int,
    deadline: float | None = None,
    concurrency: int = 1,
) -> tuple[list[TenantOutcome], list[pa.Table]]:
    """Runs the query on every bucket of a batch, up to `concurrency` tenants at once (each in its own
    worker and session). One tenant's failure never stops the others; the job's `deadline` (epoch
    seconds) and the circuit breaker stop the batch early (`worker_supervisor`; each concurrent slot
    has its own supervisor, so its own breaker).

    Returns the outcomes (in the batch's order) and the tenants' rows grouped into one table per distinct
    schema, each with `_bucket` as the first column, the tenants in the batch's order.
    """
    try:
        # Checked again where it runs: the workflow can be started by other paths than submit.
        sql = check_read_only_select(sql)
    except SqlRejected as error:
        return [TenantOutcome(bucket=b, status="error", message=str(error)) for b in buckets], []

    try:
        key = WorkerKey.of(tenants, timeout_seconds, memory_limit_mb, threads)
    except Exception as error:  # e.g. no credentials or token to open the databases with
        message = f"Could not start the query session: {short_error(error)}"
        return [TenantOutcome(bucket=b, status="error", message=message) for b in buckets], []
    finished: list[tuple[int, TenantOutcome, pa.Table | None]] = []
    # The supervisor keeps time on the monotonic clock; the deadline is the job's, on the wall clock.
    monotonic_deadline = None if deadline is None else time.monotonic() + (deadline - time.time())
    results = _run_concurrently(buckets, tenants, sql, limit, table, key, concurrency, monotonic_deadline)
    try:
        for result in results:
            finished.append(result)
            if on_tenant is not None:
                on_tenant(result[1])
    finally:
        results.close()  # an on_tenant that stops the batch stops the workers too
    finished.sort(key=lambda result: result[0])
    by_schema: dict[pa.Schema, list[pa.Table]] = {}
    for _, result_outcome, table_rows in finished:
        # Empty answers are kept too: they carry the columns even when no tenant has rows.
        if table_rows is not None:
            bucket = result_outcome.bucket
            bucket_column = pa.repeat(pa.scalar(bucket, pa.string()), table_rows.num_rows)
            labelled = table_rows.add_column(0, "_bucket", bucket_column)
            by_schema.setdefault(labelled.schema, []).append(labelled)
    return [outcome for _, outcome, _ in finished], [pa.concat_tables(tables) for tables in by_schema.values()]
