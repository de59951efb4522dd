"""Running the job's query on tenant databases, each attached read-only in turn.

Isolation where the query runs (the SQL guard has already confined the statement at submit, and
`query_workers.run_batch` checks it again). A DuckDB session is sandboxed before any tenant SQL runs: `allowed_paths`
holds one tenant's paths and nothing else, external access is disabled (no other file, no URL, no
extension install or load, no COPY/ATTACH elsewhere), temp files are off, memory and threads are
capped, and the configuration is locked so nothing can undo it. `allowed_paths` cannot change once
external access is off, so how one session serves many tenants depends on the backend
(`TenantDatabases.confinement`):

- "alias" (folder, and S3 tenants small enough to download): one session (a worker's, batch after
  batch) is allowed a single alias path in a private folder. Each tenant's file is hard-linked (folder)
  or downloaded (S3) there, attached, and the alias removed before its query runs: the
  query reads its tenant through the open database, while no path it may name (not even the alias)
  leads to any file, so nothing else can be read or attached and nothing outlives the tenant's turn.
  A tenant whose file cannot be linked or downloaded gets a session of its own;
- "session": each tenant gets a sandboxed session of its own, allowed only its own paths (an S3 tenant
  larger than the download limit);
- "none" (MotherDuck needs the network): one session with the limits and the lock only.

The runner lives in a query worker process the batch can kill (`query_workers`). Cost:
`bench/isolation_cost.py`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import duckdb
import pyarrow as pa

from queryall.dal.tenant_databases import TenantDatabases
from queryall.logic.sql_guard import wrap_with_limit
from queryall.models.workflow import TenantOutcome
from queryall.sql_literals import sql_string

MAX_MESSAGE = 500
# DuckDB's Arrow export cannot carry these faithfully (UHUGEINT overflows decimal128, BIT has no
# Arrow type), so their columns travel as text.
_TEXT_TYPES = ("UHUGEINT", "BIT")
ALIAS_FILE = "tenant.duckdb"


class QueryTimeout(RuntimeError):
    pass


def short_error(error: BaseException) -> str:
    """The first line of an error, at most MAX_MESSAGE characters: what a tenant's outcome says."""
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

    def run(self, bucket: str, sql: str, limit: int, table: str | None,
            on_query_started: Callable[[], None] | None = None) -> tuple[TenantOutcome, pa.Table | None]:
        """The tenant's outcome and rows. `on_query_started` is called once its database is open, as its
        query (and the query's timeout) starts."""
        started = time.perf_counter()

        def outcome(status: str, rows: int = 0, message: str | None = None) -> TenantOutcome:
            elapsed = round((time.perf_counter() - started) * 1000, 3)
            return TenantOutcome(bucket=bucket, status=status, rows=rows, duration_ms=elapsed, message=message)

        try:
            connection, location = self._session_for(bucket)
        except (duckdb.Error, ValueError) as error:
            return outcome("error", message=f"Could not open database: {short_error(error)}"), None
        try:
            try:
                catalog = self.tenants.use(connection, bucket, location)
            except (duckdb.Error, ValueError) as error:
                message = short_error(error)
                if location is not None:  # the caller knows the tenant's database, not its alias
                    message = message.replace(location, self.tenants.location(bucket))
                return outcome("error", message=f"Could not open database: {message}"), None
            finally:
                if location is not None:
                    self.tenants.clear_alias(location)  # attached: the query needs no path from here on
            if on_query_started is not None:
                on_query_started()
            try:
                if table is not None and not self._has_table(connection, catalog, table):
                    return outcome("skipped", message=f"Table '{table}' not found"), None
                result = self._execute_with_timeout(connection, self._wrapped(sql, limit))
                return outcome("ok", rows=result.num_rows), result
            except QueryTimeout:
                return outcome("error", message=f"Query exceeded the {self.timeout_seconds:g} s timeout"), None
            except duckdb.Error as error:
                return outcome("error", message=short_error(error)), None
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
