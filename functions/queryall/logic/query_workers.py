"""Running a batch's tenants in query worker processes the batch can stop, and keeping them for the
next batch.

DuckDB checks its interrupt between chunks and its memory_limit covers its buffers only: one scalar
call (`lpad('x', 2e9)`, `to_json(range(3e7))`) can run on for a minute past both and take gigabytes.
So tenants' queries run in a forked worker process that the caller can kill: when its tenant runs
too long past the timeout, or the worker grows past the memory limit by too much. A killed worker
costs its tenant an error, and a new worker takes the tenants after it.

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
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection

import pyarrow as pa

from queryall.dal.tenant_databases import TenantDatabases
from queryall.logic.combined_result import ipc_stream
from queryall.logic.sql_guard import SqlRejected, check_read_only_select
from queryall.logic.tenant_query import TenantQueryRunner, short_error
from queryall.models.workflow import TenantOutcome

_KILL_GRACE_SECONDS = 2.0
_POLL_SECONDS = 0.05
# A worker forked while another thread of the parent was inside DuckDB (the local stack runs every
# function in one process) can inherit a lock that is never released and hang before its session is
# ready. Setup takes milliseconds (seconds for MotherDuck), so a worker that is not ready in time is
# replaced, and only after a few such attempts are the batch's tenants reported as failed.
_SETUP_TIMEOUT_SECONDS = 20.0
_SETUP_ATTEMPTS = 3
# Idle workers kept in this process: a Lambda runs one batch at a time (one worker); the local stack
# runs one per workflow slot. Beyond this the longest idle is stopped.
_MAX_IDLE_WORKERS = 4
# A worker whose memory grew by more than this share of the hard limit over its life is retired
# after its batch, so that what DuckDB or the allocator keeps never eats into a later tenant's room.
_RETIRE_GROWTH = 0.25
# How often an idle worker checks that the process that started it is still there.
_PARENT_CHECK_SECONDS = 1.0


class _SetupStalled(Exception):
    """The worker did not become ready in time; no tenant of it has started."""


class _WorkerGone(Exception):
    """The worker ended while no tenant of it was running (while idle, or between two tenants)."""


def _hard_memory_limit_bytes(memory_limit_mb: int) -> int:
    return int(memory_limit_mb * 1.25 + 256) * 1024 * 1024


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
    template: str
    # A digest of the session's setup statements (credentials, endpoint, token: a change needs a new
    # session), so that no secret is kept or printed with the key.
    setup_digest: str
    timeout_seconds: float
    memory_limit_mb: int
    threads: int

    @classmethod
    def of(cls, tenants: TenantDatabases, timeout_seconds: float, memory_limit_mb: int, threads: int) -> WorkerKey:
        setup = hashlib.sha256("\0".join(tenants.session_setup()).encode()).hexdigest()
        return cls(type(tenants).__qualname__, tenants.template, setup, float(timeout_seconds), int(memory_limit_mb),
                   int(threads))


def _serve(commands: Connection, tenants: TenantDatabases, key: WorkerKey, alias_folder: str | None) -> None:
    """Worker process: sandbox a DuckDB session, then run each batch it is sent, reporting each tenant
    as it goes. Ends when its parent closes the pipe or is gone."""
    parent = os.getppid()
    try:
        runner = TenantQueryRunner(tenants, key.timeout_seconds, key.memory_limit_mb, key.threads, alias_folder)
    except BaseException as error:  # the parent reports it for every tenant
        commands.send(("fatal", f"Could not start the query session: {short_error(error)}"))
        return
    commands.send(("ready", None))
    while True:
        if not commands.poll(_PARENT_CHECK_SECONDS):
            if os.getppid() != parent:
                return
            continue
        try:
            buckets, sql, limit, table = commands.recv()
        except EOFError:
            return
        for bucket in buckets:
            commands.send(("start", bucket))
            outcome, rows = runner.run(bucket, sql, limit, table)
            commands.send(("done", outcome.model_dump_json(), None if rows is None else ipc_stream(rows)))
        commands.send(("end", None))


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

    def run(self, remaining: list[str], sql: str, limit: int,
            table: str | None) -> Iterator[tuple[TenantOutcome, pa.Table | None]]:
        """Each tenant's outcome and rows, in order, removing finished tenants from `remaining`.
        Afterwards `reusable` says whether the worker finished the batch and may take another."""
        self.reusable = False
        try:
            self._pipe.send((list(remaining), sql, limit, table))
        except OSError as error:
            raise _WorkerGone() from error
        yield from self._follow(remaining)

    def _follow(self, remaining: list[str]) -> Iterator[tuple[TenantOutcome, pa.Table | None]]:
        key, pid = self.key, self.process.pid or 0
        started = self._started
        baseline = _rss_bytes(pid) if self._ready_rss is not None else None
        current: str | None = None
        limit_bytes = _hard_memory_limit_bytes(key.memory_limit_mb)

        def fail(message: str) -> tuple[TenantOutcome, None]:
            bucket = remaining.pop(0)
            elapsed = round((time.monotonic() - started) * 1000, 3)
            return TenantOutcome(bucket=bucket, status="error", duration_ms=elapsed, message=message), None

        while True:
            if self._pipe.poll(_POLL_SECONDS):
                try:
                    kind, *payload = self._pipe.recv()
                except EOFError:  # the worker is gone (killed from outside, crashed): its pipe is closed
                    self.process.join(_KILL_GRACE_SECONDS)
                    if current is None:  # between tenants: the rest go to another worker at no cost
                        raise _SetupStalled() if self._ready_rss is None else _WorkerGone() from None
                    yield fail(f"Query process ended unexpectedly (exit code {self.process.exitcode})")
                    return
                if kind == "ready":
                    self._ready_rss = baseline = _rss_bytes(pid)
                elif kind == "start":
                    current, started = payload[0], time.monotonic()
                elif kind == "done":
                    outcome = TenantOutcome.model_validate_json(payload[0])
                    rows = None if payload[1] is None else pa.ipc.open_stream(payload[1]).read_all()
                    remaining.pop(0)
                    current = None
                    yield outcome, rows
                elif kind == "fatal":
                    while remaining:
                        yield fail(payload[0])
                    return
                elif kind == "end":
                    self.reusable = self._grew_little(limit_bytes)
                    return
                continue
            now = time.monotonic()
            if current is None and self._ready_rss is None and now - started > _SETUP_TIMEOUT_SECONDS:
                self.process.kill()
                raise _SetupStalled()
            if current is not None and now - started > key.timeout_seconds + _KILL_GRACE_SECONDS:
                self.process.kill()
                yield fail(f"Query exceeded the {key.timeout_seconds:g} s timeout")
                return
            rss = _rss_bytes(pid)
            if current is not None and baseline is not None and rss is not None and rss - baseline > limit_bytes:
                self.process.kill()
                yield fail(f"Query exceeded the {key.memory_limit_mb} MB memory limit")
                return

    def _grew_little(self, limit_bytes: int) -> bool:
        rss = _rss_bytes(self.process.pid or 0)
        return self._ready_rss is not None and rss is not None and rss - self._ready_rss <= limit_bytes * _RETIRE_GROWTH

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


def _keep_idle(worker: QueryWorker) -> None:
    with _idle_lock:
        _forget_inherited()
        _idle.append(worker)
        evicted = _idle[:-_MAX_IDLE_WORKERS] if len(_idle) > _MAX_IDLE_WORKERS else []
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
                    key: WorkerKey) -> Iterator[tuple[TenantOutcome, pa.Table | None]]:
    """Each tenant's outcome and rows, in order, from an idle worker when there is one. A worker killed
    or ended during a tenant's query costs that tenant an error; a new worker (fresh sandbox) takes the
    tenants after it. A worker that never gets ready, or ends while no tenant runs, is replaced and costs
    no tenant anything, up to `_SETUP_ATTEMPTS` such workers in a row."""
    remaining = list(buckets)
    stalls = 0  # workers in a row that ended or stalled without finishing a tenant
    while remaining:
        worker = _take_idle(key) or QueryWorker(tenants, key)
        left = len(remaining)
        try:
            yield from worker.run(remaining, sql, limit, table)
        except (_WorkerGone, _SetupStalled):
            stalls = 0 if len(remaining) < left else stalls + 1
            if stalls >= _SETUP_ATTEMPTS:
                while remaining:
                    bucket = remaining.pop(0)
                    yield TenantOutcome(bucket=bucket, status="error",
                                        message="Could not start the query session in time"), None
        finally:
            # Closed early (the job was cancelled) or stopped: the worker is in the middle of a batch.
            if worker.reusable:
                _keep_idle(worker)
            else:
                worker.stop()


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
) -> tuple[list[TenantOutcome], list[pa.Table]]:
    """Runs the query on every bucket of a batch. One tenant's failure never stops the others.

    Returns the outcomes and the tenants' rows grouped into one table per distinct schema, each with
    `_bucket` as the first column.
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
    outcomes: list[TenantOutcome] = []
    by_schema: dict[pa.Schema, list[pa.Table]] = {}
    results = _run_in_workers(buckets, tenants, sql, limit, table, key)
    try:
        for result_outcome, table_rows in results:
            outcomes.append(result_outcome)
            if on_tenant is not None:
                on_tenant(result_outcome)
            # Empty answers are kept too: they carry the columns even when no tenant has rows.
            if table_rows is not None:
                bucket = result_outcome.bucket
                bucket_column = pa.repeat(pa.scalar(bucket, pa.string()), table_rows.num_rows)
                labelled = table_rows.add_column(0, "_bucket", bucket_column)
                by_schema.setdefault(labelled.schema, []).append(labelled)
    finally:
        results.close()  # an on_tenant that stops the batch stops the worker too
    return outcomes, [pa.concat_tables(tables) for tables in by_schema.values()]
