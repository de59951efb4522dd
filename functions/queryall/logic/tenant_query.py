"""Running the job's query on one batch of tenant databases, each attached read-only in turn."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import duckdb
import pyarrow as pa

from queryall.logic.sql_guard import SqlRejected, check_read_only_select, wrap_with_limit
from queryall.models.workflow import TenantOutcome

TENANT_ALIAS = "tenant"
MAX_MESSAGE = 500
# DuckDB's Arrow export cannot carry these faithfully (UHUGEINT overflows decimal128, BIT has no
# Arrow type), so their columns travel as text.
_TEXT_TYPES = ("UHUGEINT", "BIT")


class QueryTimeout(RuntimeError):
    pass


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


class TenantQueryRunner:
    """One in-memory DuckDB instance per batch; tenants are ATTACHed READ_ONLY and DETACHed in turn
    (about 1 ms each, against 13-17 ms for a new instance per tenant)."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.connection = duckdb.connect(":memory:")
        # Deterministic rendering of TIMESTAMPTZ and friends, whatever the Lambda's locale.
        self.connection.execute("SET TimeZone = 'UTC'")

    def close(self) -> None:
        self.connection.close()

    def run(
        self, bucket: str, location: str, sql: str, limit: int, table: str | None
    ) -> tuple[TenantOutcome, pa.Table | None]:
        started = time.perf_counter()

        def outcome(status: str, rows: int = 0, message: str | None = None) -> TenantOutcome:
            elapsed = round((time.perf_counter() - started) * 1000, 3)
            return TenantOutcome(bucket=bucket, status=status, rows=rows, duration_ms=elapsed, message=message)

        con = self.connection
        try:
            con.execute(f"ATTACH {_sql_string(location)} AS {TENANT_ALIAS} (READ_ONLY)")
        except duckdb.Error as error:
            return outcome("error", message=f"Could not open database: {_short(error)}"), None
        try:
            if table is not None and not self._has_table(table):
                return outcome("skipped", message=f"Table '{table}' not found"), None
            con.execute(f"USE {TENANT_ALIAS}")
            result = self._execute_with_timeout(wrap_with_limit(sql, limit))
            return outcome("ok", rows=result.num_rows), result
        except QueryTimeout:
            return outcome("error", message=f"Query exceeded the {self.timeout_seconds:g} s timeout"), None
        except duckdb.Error as error:
            return outcome("error", message=_short(error)), None
        finally:
            con.execute("USE memory")
            con.execute(f"DETACH {TENANT_ALIAS}")

    def _has_table(self, table: str) -> bool:
        found = self.connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ? "
            "UNION ALL SELECT count(*) FROM duckdb_views() WHERE database_name = ? AND view_name = ?",
            [TENANT_ALIAS, table, TENANT_ALIAS, table],
        ).fetchall()
        return any(count for (count,) in found)

    def _execute_with_timeout(self, sql: str) -> pa.Table:
        timed_out = threading.Event()

        def interrupt() -> None:
            timed_out.set()
            self.connection.interrupt()

        timer = threading.Timer(self.timeout_seconds, interrupt)
        timer.start()
        try:
            relation = self.connection.sql(sql)
            text_columns = [name for name, kind in zip(relation.columns, relation.types, strict=True)
                            if str(kind) in _TEXT_TYPES]
            if text_columns:
                relation = relation.project(", ".join(
                    f'"{n}"::VARCHAR AS "{n}"' if n in text_columns else f'"{n}"'
                    for n in (c.replace('"', '""') for c in relation.columns)
                ))
            reader = relation.arrow()
            return reader.read_all() if hasattr(reader, "read_all") else reader
        except duckdb.InterruptException as error:
            if timed_out.is_set():
                raise QueryTimeout() from error
            raise
        finally:
            timer.cancel()


def run_batch(
    buckets: list[str],
    locate: Callable[[str], str],
    sql: str,
    limit: int,
    table: str | None,
    timeout_seconds: float,
    on_tenant: Callable[[TenantOutcome], None] | None = None,
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

    runner = TenantQueryRunner(timeout_seconds)
    outcomes: list[TenantOutcome] = []
    by_schema: dict[pa.Schema, list[pa.Table]] = {}
    try:
        for bucket in buckets:
            result_outcome, table_rows = runner.run(bucket, locate(bucket), sql, limit, table)
            outcomes.append(result_outcome)
            if on_tenant is not None:
                on_tenant(result_outcome)
            # Empty answers are kept too: they carry the columns even when no tenant has rows.
            if table_rows is not None:
                labelled = table_rows.add_column(0, "_bucket", pa.array([bucket] * table_rows.num_rows, pa.string()))
                by_schema.setdefault(labelled.schema, []).append(labelled)
    finally:
        runner.close()
    return outcomes, [pa.concat_tables(tables) for tables in by_schema.values()]
