"""Parser-based guard that only lets a single read-only SELECT statement through.

Validation uses DuckDB's own parser (``duckdb.extract_statements`` and ``duckdb.tokenize``), never
regular expressions, so comments, string literals and dollar quoting are understood exactly as DuckDB
will understand them when the query runs.

Accepted: exactly one statement of DuckDB statement type SELECT -- plain SELECT, ``WITH ... SELECT``,
UNION / INTERSECT / EXCEPT, window functions, ``VALUES``, FROM-first (``FROM person``), PIVOT with an
explicit ``IN (...)`` list, UNPIVOT, and the metadata queries DESCRIBE / SHOW / SUMMARIZE (these parse
as SELECT and still run when wrapped in ``SELECT * FROM (...) LIMIT n``).

Rejected: empty input, more than one statement, every other statement type (INSERT, UPDATE, DELETE,
CREATE, DROP, ALTER, ATTACH, DETACH, COPY, EXPORT, SET/RESET/USE, INSTALL/LOAD, CALL, CHECKPOINT,
EXPLAIN, PREPARE/EXECUTE, BEGIN/COMMIT, VACUUM/ANALYZE, ...), PRAGMA (even the forms DuckDB rewrites to
a SELECT), PIVOT without an ``IN`` list (DuckDB expands it into a CREATE TYPE plus a SELECT) and
syntax errors.

Then the statement is confined to the tenant's own tables, judged on DuckDB's full syntax tree
(``json_serialize_sql``), allow-list first: tables are named plainly (no other database, no schema but
``main``, never a path or URL), table functions are only ``range``/``generate_series``/``unnest``/
``json_each``/``json_tree``, no DuckDB system view (``duckdb_settings``, ``pg_settings`` ...), no
function reading settings, variables, the environment or sequences, and ``SHOW`` only for the
tenant's own tables. Where the query runs it is confined again (see ``tenant_query`` and ``query_workers``).
"""

from __future__ import annotations

import functools
import json
import re
import threading
from typing import Any

import duckdb

from queryall.sql_literals import sql_string

__all__ = ["SqlRejected", "check_read_only_select", "wrap_with_limit"]


class SqlRejected(ValueError):
    """The SQL text is not a single read-only SELECT statement; the message says why."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _extract(sql: str) -> list[duckdb.Statement]:
    try:
        return list(duckdb.extract_statements(sql))
    except duckdb.Error as exc:
        # Parser messages are multi-line with a caret diagram; the first line names the problem.
        raise SqlRejected(f"SQL syntax error: {_first_line(exc)}") from None


def _strip_semicolons(sql: str) -> str:
    """Blank out leading and trailing statement separators (outside comments and strings) and strip."""
    raw = sql.encode("utf-8")
    # duckdb.tokenize reports UTF-8 byte offsets and skips comments; ';' is always a token of its own.
    tokens = [pos for pos, _kind in duckdb.tokenize(sql)]
    semis = {pos for pos in tokens if raw[pos : pos + 1] == b";"}
    edge: list[int] = []
    for pos in tokens:  # leading separators
        if pos not in semis:
            break
        edge.append(pos)
    for pos in reversed(tokens):  # trailing separators
        if pos not in semis:
            break
        edge.append(pos)
    if not edge:
        return sql.strip()
    buf = bytearray(raw)
    for pos in edge:
        # A space (not deletion) so neighbouring tokens can never fuse, e.g. `1;--` stays a comment.
        buf[pos] = 0x20
    return buf.decode("utf-8").strip()


def _first_keyword(sql: str) -> str:
    raw = sql.encode("utf-8")
    tokens = [pos for pos, _kind in duckdb.tokenize(sql) if raw[pos : pos + 1] != b";"]
    if not tokens:
        return ""
    pos = tokens[0]
    end = pos
    while end < len(raw) and (chr(raw[end]).isalpha() or raw[end] == 0x5F):
        end += 1
    return raw[pos:end].decode("ascii", errors="replace").upper()


def _count_written_statements(sql: str) -> int:
    """Number of ';'-separated statements as written (DuckDB may expand one into several)."""
    raw = sql.encode("utf-8")
    count, in_statement = 0, False
    for pos, _kind in duckdb.tokenize(sql):
        if raw[pos : pos + 1] == b";":
            in_statement = False
        elif not in_statement:
            count, in_statement = count + 1, True
    return count


# A PIVOT without IN (...) expands into CREATE TYPE ... AS ENUM plus the SELECT.
_EXPANDABLE = frozenset({duckdb.StatementType.CREATE, duckdb.StatementType.SELECT})


def _type_name(statement: duckdb.Statement) -> str:
    name = getattr(statement.type, "name", "")
    return name if name and name.isidentifier() else "UNKNOWN"


def check_read_only_select(sql: str) -> str:
    """Validate that ``sql`` is exactly one read-only SELECT statement and return it normalized.

    The normalized text is the statement with surrounding whitespace and leading/trailing semicolons
    removed (comments are kept; :func:`wrap_with_limit` copes with a trailing ``--`` comment).
    Raises :class:`SqlRejected` with a message naming the problem otherwise.
    """
    if not isinstance(sql, str):
        raise SqlRejected(f"SQL must be a string, got {type(sql).__name__}")
    statements = _extract(sql)
    if not statements:
        raise SqlRejected("SQL is empty (no statement found)")
    written = _count_written_statements(sql)
    if written > 1:
        raise SqlRejected(f"expected exactly one statement, found {written}")
    keyword = _first_keyword(sql)
    if len(statements) > 1:
        # DuckDB expanded one written statement into several (generated ones have empty text).
        if keyword == "PIVOT" or all(s.type in _EXPANDABLE for s in statements):
            raise SqlRejected(
                "PIVOT without an explicit IN (...) value list is not supported (DuckDB expands it into "
                "several statements); list the values, e.g. PIVOT t ON col IN ('a', 'b')"
            )
        # Name the written statement (it keeps its text), not the generated BEGIN/COMMIT around it.
        others = [s for s in statements if s.type != duckdb.StatementType.SELECT]
        kind = _type_name(next((s for s in others if s.query), others[0]))
        raise SqlRejected(f"only read-only SELECT queries are allowed; got {kind} statement ({keyword})")
    statement = statements[0]
    kind = _type_name(statement)
    if keyword == "PRAGMA":
        # Some PRAGMAs are rewritten to `SELECT * FROM pragma_x()`, but they are still pragmas.
        raise SqlRejected(
            "only read-only SELECT queries are allowed; got PRAGMA statement "
            "(use the table function form, e.g. SELECT * FROM pragma_version())"
        )
    if statement.type != duckdb.StatementType.SELECT:
        detail = f" ({keyword})" if keyword and keyword != kind else ""
        raise SqlRejected(f"only read-only SELECT queries are allowed; got {kind} statement{detail}")

    normalized = _strip_semicolons(sql)
    # The statement must survive wrapping unchanged: still one SELECT once inside the LIMIT subquery.
    wrapped = wrap_with_limit(normalized, 1)
    try:
        wrapped_statements = list(duckdb.extract_statements(wrapped))
    except duckdb.Error as exc:
        raise SqlRejected(
            f"{keyword or 'this'} statement cannot be used as a subquery: {_first_line(exc)}"
        ) from None
    if len(wrapped_statements) != 1 or wrapped_statements[0].type != duckdb.StatementType.SELECT:
        raise SqlRejected(f"{keyword or 'this'} statement cannot be used as a subquery")
    _check_confined(normalized)
    return normalized


# Table functions a tenant query may call: they generate rows and read nothing.
_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
# Scalar functions that would read settings, variables, the environment or logs, write to a
# sequence or the log, or just hold the Lambda.
_DENIED_FUNCTIONS = frozenset({
    "current_setting", "getenv", "getvariable", "nextval", "currval", "setval", "write_log",
    "sleep_ms", "pg_sleep", "json_execute_serialized_sql", "query", "query_table",
    "parse_duckdb_log_message", "which_secret",
})
_DENIED_PREFIXES = ("duckdb_", "pragma_", "read_", "parquet_", "enable_", "disable_", "truncate_")
_TABLE_REF_TYPES = frozenset({"BASE_TABLE", "JOIN", "SUBQUERY", "TABLE_FUNCTION", "EXPRESSION_LIST",
                              "EMPTY", "PIVOT", "SHOW_REF"})
_QUERY_NODE_TYPES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
# A table name is an identifier, never something DuckDB could take for a file or URL.
_TABLE_NAME = re.compile(r"^\w[\w $-]*$")
_SCHEMAS = frozenset({"", "main"})
_FUNCTION_SCHEMAS = frozenset({"", "main", "pg_catalog"})  # builtins DuckDB desugars to carry a schema
_UNSET_LOCATION = 2**64 - 1


@functools.cache
def _parser() -> tuple[duckdb.DuckDBPyConnection, threading.Lock, frozenset[str]]:
    con = duckdb.connect(":memory:")
    # Views the system catalog resolves without qualification: DuckDB's own metadata, not tenant data.
    views = con.execute(
        "SELECT lower(view_name) FROM duckdb_views() WHERE database_name = 'system' AND schema_name <> "
        "'information_schema'"
    ).fetchall()
    return con, threading.Lock(), frozenset(v for (v,) in views)


def _syntax_tree(sql: str) -> dict[str, Any]:
    con, lock, _ = _parser()
    with lock:
        # A literal, not a parameter: with a parameter DuckDB looks for pandas (to see if it is a
        # DataFrame), and where pandas is not installed the failed import costs ~1 ms every check.
        text = con.execute(f"SELECT json_serialize_sql({sql_string(sql)})").fetchone()[0]
    tree = json.loads(text)
    if tree.get("error"):
        raise SqlRejected(f"query cannot be checked: {tree.get('error_message', 'unsupported syntax')}")
    return tree


def _where(node: dict[str, Any], sql: str) -> str:
    location = node.get("query_location")
    if not isinstance(location, int) or location == _UNSET_LOCATION:
        return ""
    return f" (at character {len(sql.encode()[:location].decode(errors='ignore')) + 1})"


def _check_table(node: dict[str, Any], sql: str, system_views: frozenset[str]) -> None:
    kind = node["type"]
    if kind not in _TABLE_REF_TYPES:
        raise SqlRejected(f"{kind.lower().replace('_', ' ')} is not allowed in a tenant query{_where(node, sql)}")
    if kind == "BASE_TABLE":
        name = node.get("table_name", "")
        if node.get("catalog_name"):
            raise SqlRejected(
                f"table {node['catalog_name']}.{name} names another database; a tenant query reads only its "
                f"own tables, unqualified{_where(node, sql)}"
            )
        if node.get("schema_name", "") not in _SCHEMAS:
            raise SqlRejected(
                f"schema {node['schema_name']!r} is not allowed: a tenant query reads only its own tables "
                f"(unqualified or main.<table>){_where(node, sql)}"
            )
        if not _TABLE_NAME.match(name):
            raise SqlRejected(
                f"{name!r} is not a table name: files, paths and URLs cannot be queried{_where(node, sql)}"
            )
        if name.lower() in system_views:
            raise SqlRejected(f"system view {name} is not allowed in a tenant query{_where(node, sql)}")
        if node.get("at_clause"):
            raise SqlRejected(f"AT (time travel) is not allowed in a tenant query{_where(node, sql)}")
    elif kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if name not in _TABLE_FUNCTIONS or function.get("catalog") or function.get("schema") not in _SCHEMAS:
            raise SqlRejected(
                f"table function {name}() is not allowed: a tenant query reads only the tenant's own tables "
                f"(allowed: {', '.join(sorted(_TABLE_FUNCTIONS))}){_where(node, sql)}"
            )
    elif kind == "SHOW_REF" and node.get("query") is None and node.get("table_name") != '"tables"':
        # SHOW TABLES lists the tenant's tables; SHOW DATABASES / SHOW ALL TABLES look beyond it.
        raise SqlRejected("only SHOW TABLES, DESCRIBE and SUMMARIZE of the tenant's own tables are allowed")


def _check_function(node: dict[str, Any], sql: str) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("catalog") or node.get("schema", "") not in _FUNCTION_SCHEMAS:
        raise SqlRejected(f"function {node.get('schema')}.{name}() names another catalog or schema{_where(node, sql)}")
    if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
        raise SqlRejected(f"function {name}() is not allowed in a tenant query{_where(node, sql)}")


def _check_type(node: dict[str, Any], sql: str) -> None:
    info = node.get("type_info") or {}
    if info.get("catalog") or info.get("schema", "") not in _SCHEMAS:
        raise SqlRejected(f"type {info.get('name')} names another catalog or schema")


def _check_confined(sql: str) -> None:
    """Walk the whole syntax tree: every table reference, table function, function call and type,
    wherever it sits (CTEs, subqueries, lambdas, PIVOT, DESCRIBE)."""
    system_views = _parser()[2]
    pending: list[Any] = [_syntax_tree(sql)["statements"]]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "class" in node:
            if node["class"] in ("FUNCTION", "WINDOW", "AGGREGATE") and "function_name" in node:
                _check_function(node, sql)
        elif "modifiers" in node:  # a query node: SELECT, set operation, CTE
            if node.get("type") not in _QUERY_NODE_TYPES:
                raise SqlRejected(f"{node.get('type')} is not allowed in a tenant query")
        elif "sample" in node and "type" in node:  # a table reference
            _check_table(node, sql, system_views)
        elif "type_info" in node and "id" in node:  # a type, e.g. of a cast
            _check_type(node, sql)
        pending.extend(node.values())


def wrap_with_limit(sql: str, limit: int) -> str:
    """Return ``SELECT * FROM (\\n<sql>\\n) LIMIT <limit>``.

    The inner SQL sits on its own lines so a trailing ``--`` comment cannot swallow the closing
    parenthesis; leading/trailing semicolons are removed first.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    return f"SELECT * FROM (\n{_strip_semicolons(sql)}\n) LIMIT {limit}"
