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

Statement type is the only thing checked here: table functions that read files (``read_csv`` etc.)
have type SELECT and must be contained by how the query is executed (read-only connection, settings).
"""

from __future__ import annotations

import duckdb

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
    return normalized


def wrap_with_limit(sql: str, limit: int) -> str:
    """Return ``SELECT * FROM (\\n<sql>\\n) LIMIT <limit>``.

    The inner SQL sits on its own lines so a trailing ``--`` comment cannot swallow the closing
    parenthesis; leading/trailing semicolons are removed first.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    return f"SELECT * FROM (\n{_strip_semicolons(sql)}\n) LIMIT {limit}"
