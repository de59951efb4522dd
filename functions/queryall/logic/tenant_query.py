"""Running the job's query on one batch of tenant databases, each attached read-only in turn.

Isolation where the query runs (the SQL guard has already confined the statement at submit, and
checks it again here). A DuckDB session is sandboxed before any tenant SQL runs: `allowed_paths`
holds one tenant's paths and nothing else, external access is disabled (no other file, no URL, no
extension install or load, no COPY/ATTACH elsewhere), temp files are off, memory and threads are
capped, and the configuration is locked so nothing can undo it. `allowed_paths` cannot change once
external access is off, so how one session serves many tenants depends on the backend
(`TenantDatabases.confinement`):

- "alias" (folder): the batch's one session is allowed a single alias path in a private folder. Each
  tenant's file is hard-linked there, attached, and the link removed before its query runs: the
  query reads its tenant through the open database, while no path it may name (not even the alias)
  leads to any file, so nothing else can be read or attached and nothing outlives the tenant's turn.
  A tenant whose file cannot be linked gets a session of its own;
- "session" (S3): each tenant gets a sandboxed session of its own, allowed only its own paths;
- "none" (MotherDuck needs the network): one session for the batch with the limits and the lock only.

The batch runs in a forked worker process, stopped from outside when a query outruns the timeout or
the memory limit (DuckDB alone cannot always stop a single huge scalar call). Cost:
`bench/isolation_cost.py`.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import duckdb
import pyarrow as pa

from queryall.dal.tenant_databases import TenantDatabases, sql_string
from queryall.logic.combined_result import ipc_stream
from queryall.logic.sql_guard import SqlRejected, check_read_only_select, wrap_with_limit
from queryall.models.workflow import TenantOutcome

MAX_MESSAGE = 500
# DuckDB's Arrow export cannot carry these faithfully (UHUGEINT overflows decimal128, BIT has no
# Arrow type), so their columns travel as text.
_TEXT_TYPES = ("UHUGEINT", "BIT")
ALIAS_FILE = "tenant.duckdb"


class QueryTimeout(RuntimeError):
    pass


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def sandbox(con: duckdb.DuckDBPyConnection, allowed_paths: list[str] | None, memory_limit_mb: int,
            threads: int) -> None:
    """Lock `con` down for tenant queries. `allowed_paths` None: the backend needs the network
    (MotherDuck), so only the limits and the configuration lock apply."""
    con.execute("SET TimeZone = 'UTC'")  # deterministic TIMESTAMPTZ rendering, whatever the locale
    con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET temp_directory = ''")  # never spill to disk: over the limit is an error
    if allowed_paths is not None:
        con.execute(f"SET allowed_paths = [{', '.join(sql_string(p) for p in allowed_paths)}]")
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


class TenantQueryRunner:
    """Runs tenants' queries one at a time in sandboxed DuckDB sessions (module docstring).

    `alias_folder`: a private folder on the tenant files' file system for the "alias" confinement
    (made and removed by the caller); without one, every tenant of such a backend gets its own session."""

    def __init__(self, tenants: TenantDatabases, timeout_seconds: float, memory_limit_mb: int, threads: int,
                 alias_folder: str | None = None) -> None:
        self.tenants = tenants
        self.timeout_seconds = timeout_seconds
        self._limits = (memory_limit_mb, threads)
        self._alias = os.path.join(alias_folder, ALIAS_FILE) if alias_folder else None
        self._watchdog = _Watchdog(timeout_seconds)
        self._shared: duckdb.DuckDBPyConnection | None = None
        self._wrap_key: tuple[str, int] | None = None
        self._wrap = ""
        if tenants.confinement == "none" or (tenants.confinement == "alias" and self._alias):
            try:
                self._shared = self._open_shared()
            except BaseException:
                self._watchdog.close()
                raise

    def _open(self, allowed_paths: list[str] | None) -> duckdb.DuckDBPyConnection:
        connection = self.tenants.open_session()
        try:
            sandbox(connection, allowed_paths, *self._limits)
        except BaseException:
            connection.close()
            raise
        return connection

    def _open_shared(self) -> duckdb.DuckDBPyConnection:
        if self.tenants.confinement == "none":
            return self._open(None)
        assert self._alias is not None
        return self._open([self._alias, self._alias + ".wal"])

    def close(self) -> None:
        self._watchdog.close()
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def run(self, bucket: str, sql: str, limit: int, table: str | None) -> tuple[TenantOutcome, pa.Table | None]:
        started = time.perf_counter()

        def outcome(status: str, rows: int = 0, message: str | None = None) -> TenantOutcome:
            elapsed = round((time.perf_counter() - started) * 1000, 3)
            return TenantOutcome(bucket=bucket, status=status, rows=rows, duration_ms=elapsed, message=message)

        try:
            connection, location = self._session_for(bucket)
        except (duckdb.Error, ValueError) as error:
            return outcome("error", message=f"Could not open database: {_short(error)}"), None
        try:
            try:
                catalog = self.tenants.use(connection, bucket, location)
            except (duckdb.Error, ValueError) as error:
                message = _short(error)
                if location is not None:  # the caller knows the tenant's database, not its alias
                    message = message.replace(location, self.tenants.location(bucket))
                return outcome("error", message=f"Could not open database: {message}"), None
            finally:
                if location is not None:
                    self.tenants.clear_alias(location)  # attached: the query needs no path from here on
            try:
                if table is not None and not self._has_table(connection, catalog, table):
                    return outcome("skipped", message=f"Table '{table}' not found"), None
                result = self._execute_with_timeout(connection, self._wrapped(sql, limit))
                return outcome("ok", rows=result.num_rows), result
            except QueryTimeout:
                return outcome("error", message=f"Query exceeded the {self.timeout_seconds:g} s timeout"), None
            except duckdb.Error as error:
                return outcome("error", message=_short(error)), None
            finally:
                self.tenants.release(connection, catalog)
        finally:
            if connection is not self._shared:
                connection.close()

    def _wrapped(self, sql: str, limit: int) -> str:
        """`sql` under the limit, wrapped once for the batch (tokenizing it costs ~0.1 ms a tenant)."""
        if self._wrap_key != (sql, limit):
            self._wrap_key, self._wrap = (sql, limit), wrap_with_limit(sql, limit)
        return self._wrap

    def _session_for(self, bucket: str) -> tuple[duckdb.DuckDBPyConnection, str | None]:
        """The session to run `bucket` in, and the location to attach it from (None: its own)."""
        if self._shared is not None and self.tenants.confinement == "none":
            return self._shared, None
        if self._alias is not None:
            try:
                self.tenants.point_alias(self._alias, bucket)
            except OSError:
                pass  # this tenant gets a session of its own
            else:
                assert self._shared is not None
                return self._shared, self._alias
        return self._open(self.tenants.allowed_paths(bucket)), None

    @staticmethod
    def _has_table(connection: duckdb.DuckDBPyConnection, catalog: str, table: str) -> bool:
        found = connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ? "
            "UNION ALL SELECT count(*) FROM duckdb_views() WHERE database_name = ? AND view_name = ?",
            [catalog, table, catalog, table],
        ).fetchall()
        return any(count for (count,) in found)

    def _execute_with_timeout(self, connection: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
        self._watchdog.arm(connection)
        try:
            # Executed, not made a relation first: a relation binds the query once for its columns
            # and again to run it, ~0.4 ms a tenant (13% of a small group-by).
            cursor = connection.execute(sql)
            if any(str(column[1]) in _TEXT_TYPES for column in cursor.description):
                relation = connection.sql(sql)  # rare: run again with those columns as text
                text_columns = [name for name, kind in zip(relation.columns, relation.types, strict=True)
                                if str(kind) in _TEXT_TYPES]
                quoted = {name: '"' + name.replace('"', '""') + '"' for name in relation.columns}
                reader = relation.project(", ".join(
                    f"{quoted[n]}::VARCHAR AS {quoted[n]}" if n in text_columns else quoted[n]
                    for n in relation.columns
                )).arrow()
            else:
                reader = cursor.arrow()
            return reader.read_all() if hasattr(reader, "read_all") else reader
        except duckdb.InterruptException as error:
            if self._watchdog.fired:
                raise QueryTimeout() from error
            raise
        finally:
            self._watchdog.disarm()


class _Watchdog:
    """Interrupts the running query when it runs past the timeout. One thread for the whole batch:
    starting a timer thread per tenant cost about 1 ms each, half the ATTACH floor."""

    def __init__(self, seconds: float) -> None:
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._seconds = seconds
        self._changed = threading.Condition()
        self._deadline: float | None = None
        self._closed = False
        self.fired = False
        threading.Thread(target=self._watch, name="query-watchdog", daemon=True).start()

    def arm(self, connection: duckdb.DuckDBPyConnection) -> None:
        with self._changed:
            self._connection = connection
            self._deadline, self.fired = time.monotonic() + self._seconds, False
            self._changed.notify()

    def disarm(self) -> None:
        with self._changed:
            self._deadline = None

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _watch(self) -> None:
        with self._changed:
            while not self._closed:
                if self._deadline is None:
                    self._changed.wait()
                elif time.monotonic() >= self._deadline:
                    self.fired, self._deadline = True, None
                    if self._connection is not None:
                        self._connection.interrupt()
                else:
                    self._changed.wait(self._deadline - time.monotonic())


# DuckDB checks its interrupt between chunks and its memory_limit covers its buffers only: one
# scalar call (`lpad('x', 2e9)`, `to_json(range(3e7))`) can run on for a minute past both and take
# gigabytes. So the batch's queries run in a child process that the parent can stop: killed when its
# tenant runs this long past the timeout, or grows past the memory limit by this much.
_KILL_GRACE_SECONDS = 2.0
_POLL_SECONDS = 0.05
# A worker forked while another thread of the parent was inside DuckDB (the local stack runs every
# function in one process) can inherit a lock that is never released and hang before its session is
# ready. Setup takes milliseconds (seconds for MotherDuck), so a worker that is not ready in time is
# replaced, and only after a few such attempts are the batch's tenants reported as failed.
_SETUP_TIMEOUT_SECONDS = 20.0
_SETUP_ATTEMPTS = 3


class _SetupStalled(Exception):
    """The worker did not become ready in time; no tenant of it has started."""


def _hard_memory_limit_bytes(memory_limit_mb: int) -> int:
    return int(memory_limit_mb * 1.25 + 256) * 1024 * 1024


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _worker(send: Connection, tenants: TenantDatabases, buckets: list[str], sql: str, limit: int,
            table: str | None, timeout_seconds: float, memory_limit_mb: int, threads: int,
            alias_folder: str | None) -> None:
    """Child process: sandbox a DuckDB, then run the tenants in order, reporting each as it goes."""
    try:
        runner = TenantQueryRunner(tenants, timeout_seconds, memory_limit_mb, threads, alias_folder)
    except BaseException as error:  # the parent reports it for every tenant
        send.send(("fatal", f"Could not start the query session: {_short(error)}"))
        return
    send.send(("ready", None))
    for bucket in buckets:
        send.send(("start", bucket))
        outcome, rows = runner.run(bucket, sql, limit, table)
        send.send(("done", outcome.model_dump_json(), None if rows is None else ipc_stream(rows)))
    send.send(("end", None))


def _run_in_workers(buckets: list[str], tenants: TenantDatabases, sql: str, limit: int, table: str | None,
                    timeout_seconds: float, memory_limit_mb: int, threads: int,
                    alias_folder: str | None) -> Iterator[tuple[TenantOutcome, pa.Table | None]]:
    """Each tenant's outcome and rows, in order. A killed worker costs its tenant an error; a new
    worker (fresh sandbox) takes the tenants after it. A worker that never gets ready is replaced and
    costs no tenant anything, up to `_SETUP_ATTEMPTS` times."""
    context = multiprocessing.get_context("fork")  # inherits the loaded modules: no re-import per batch
    remaining = list(buckets)
    stalls = 0
    while remaining:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_worker, daemon=True, args=(
            send, tenants, remaining, sql, limit, table, timeout_seconds, memory_limit_mb, threads, alias_folder))
        with warnings.catch_warnings():
            # The child touches only DuckDB and the pipe, never a lock another thread may hold.
            warnings.simplefilter("ignore", DeprecationWarning)
            process.start()
        send.close()
        try:
            yield from _follow(process, receive, remaining, timeout_seconds, memory_limit_mb)
        except _SetupStalled:
            stalls += 1
            if stalls >= _SETUP_ATTEMPTS:
                while remaining:
                    bucket = remaining.pop(0)
                    yield TenantOutcome(bucket=bucket, status="error",
                                        message="Could not start the query session in time"), None
        finally:
            if process.is_alive():
                process.kill()
            process.join()
            receive.close()


def _follow(process: BaseProcess, receive: Connection, remaining: list[str], timeout_seconds: float,
            memory_limit_mb: int) -> Iterator[tuple[TenantOutcome, pa.Table | None]]:
    """Relay one worker's reports, removing finished tenants from `remaining`; stop it when it overruns."""
    started = time.monotonic()
    baseline: int | None = None
    current: str | None = None
    limit_bytes = _hard_memory_limit_bytes(memory_limit_mb)

    def fail(message: str) -> tuple[TenantOutcome, None]:
        bucket = remaining.pop(0)
        elapsed = round((time.monotonic() - started) * 1000, 3)
        return TenantOutcome(bucket=bucket, status="error", duration_ms=elapsed, message=message), None

    while True:
        if receive.poll(_POLL_SECONDS):
            try:
                kind, *payload = receive.recv()
            except EOFError:
                kind, payload = "died", []
            if kind == "ready":
                baseline = _rss_bytes(process.pid or 0)
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
                return
            if kind != "died":
                continue
        now = time.monotonic()
        if not process.is_alive() and not receive.poll():
            process.join()
            yield fail(f"Query process ended unexpectedly (exit code {process.exitcode})")
            return
        if current is None and baseline is None and now - started > _SETUP_TIMEOUT_SECONDS:
            process.kill()
            raise _SetupStalled()
        if current is not None and now - started > timeout_seconds + _KILL_GRACE_SECONDS:
            process.kill()
            yield fail(f"Query exceeded the {timeout_seconds:g} s timeout")
            return
        rss = _rss_bytes(process.pid or 0)
        if current is not None and baseline is not None and rss is not None and rss - baseline > limit_bytes:
            process.kill()
            yield fail(f"Query exceeded the {memory_limit_mb} MB memory limit")
            return


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

    outcomes: list[TenantOutcome] = []
    by_schema: dict[pa.Schema, list[pa.Table]] = {}
    # Made here, not in the worker, so that it is removed even when a worker is killed.
    alias_folder = tenants.alias_folder() if tenants.confinement == "alias" else None
    results = _run_in_workers(buckets, tenants, sql, limit, table, timeout_seconds, memory_limit_mb, threads,
                              alias_folder)
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
        if alias_folder is not None:
            shutil.rmtree(alias_folder, ignore_errors=True)
    return outcomes, [pa.concat_tables(tables) for tables in by_schema.values()]
