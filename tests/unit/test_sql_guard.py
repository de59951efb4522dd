"""The SQL guard: one read-only SELECT statement, judged by DuckDB's parser, and limit wrapping."""

from __future__ import annotations

import duckdb
import pytest

from queryall.logic.sql_guard import SqlRejected, check_read_only_select, wrap_with_limit


def rejection(sql: str) -> str:
    """The guard's message for SQL it must reject."""
    with pytest.raises(SqlRejected) as caught:
        check_read_only_select(sql)
    return str(caught.value)


@pytest.fixture(scope="module")
def crm() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE person AS SELECT i AS id, ['US', 'DE', 'SE'][1 + i % 3] AS country "
        "FROM range(1, 11) r(i)"
    )
    return con


ACCEPTED = [
    "SELECT 1",
    "select id, country from person where id > 3 order by id",
    "WITH big AS (SELECT * FROM person WHERE id > 5) SELECT count(*) FROM big",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT n FROM t",
    "SELECT id FROM person UNION SELECT 42",
    "SELECT id FROM person INTERSECT SELECT 3",
    "SELECT id FROM person EXCEPT SELECT 3",
    "SELECT id, row_number() OVER (PARTITION BY country ORDER BY id) AS rn FROM person",
    "VALUES (1, 'a'), (2, 'b')",
    "FROM person",
    "FROM person SELECT id WHERE id < 3",
    "PIVOT person ON country IN ('US', 'DE') USING count(*)",
    "SELECT ';' AS semicolon_in_a_string",
    "DESCRIBE person",
    "SHOW TABLES",
    "SUMMARIZE person",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_accepts_read_only_queries_that_run_wrapped(sql: str, crm: duckdb.DuckDBPyConnection) -> None:
    normalized = check_read_only_select(sql)
    assert normalized == sql
    rows = crm.execute(wrap_with_limit(normalized, 2)).fetchall()
    assert 1 <= len(rows) <= 2


@pytest.mark.parametrize(
    ("sql", "got"),
    [
        ("INSERT INTO person VALUES (99, 'NO')", "INSERT statement"),
        ("UPDATE person SET country = 'NO'", "UPDATE statement"),
        ("DELETE FROM person", "DELETE statement"),
        ("CREATE TABLE x (a INTEGER)", "CREATE statement"),
        ("CREATE MACRO m() AS 1", "CREATE statement"),
        ("DROP TABLE person", "DROP statement"),
        ("ALTER TABLE person ADD COLUMN b INTEGER", "ALTER statement"),
        ("ATTACH 'other.duckdb' AS other", "ATTACH statement"),
        ("DETACH other", "DETACH statement"),
        ("COPY person TO 'out.csv'", "COPY statement"),
        ("EXPORT DATABASE 'dump'", "EXPORT statement"),
        ("SET threads = 1", "SET statement"),
        ("RESET threads", "SET statement (RESET)"),
        ("USE memory", "SET statement (USE)"),
        ("INSTALL httpfs", "LOAD statement (INSTALL)"),
        ("LOAD httpfs", "LOAD statement"),
        ("CALL pragma_version()", "CALL statement"),
        ("CHECKPOINT", "CALL statement (CHECKPOINT)"),
        ("EXPLAIN SELECT 1", "EXPLAIN statement"),
        ("BEGIN TRANSACTION", "TRANSACTION statement (BEGIN)"),
        ("VACUUM", "VACUUM statement"),
        ("PREPARE p AS SELECT 1", "PREPARE statement"),
        ("COPY FROM DATABASE a TO b", "COPY_DATABASE statement (COPY)"),
    ],
)
def test_rejects_statements_that_are_not_select(sql: str, got: str) -> None:
    # The type DuckDB's parser reports, plus the leading keyword when that differs from it.
    assert rejection(sql) == f"only read-only SELECT queries are allowed; got {got}"


@pytest.mark.parametrize(
    "sql", ["PRAGMA version", "pragma table_info('person')", "PRAGMA threads = 1", "; /* x */ PRAGMA version"]
)
def test_rejects_pragma_even_when_duckdb_rewrites_it_to_a_select(sql: str) -> None:
    assert duckdb.extract_statements("PRAGMA version")[0].type == duckdb.StatementType.SELECT
    with pytest.raises(SqlRejected, match="got PRAGMA statement"):
        check_read_only_select(sql)


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT 1; SELECT 2", 2),
        ("SELECT 1; DROP TABLE person", 2),
        ("SELECT 1;;SELECT 2; SELECT 3;", 3),
        ("SELECT 1; PIVOT person ON country", 2),
    ],
)
def test_rejects_multiple_statements(sql: str, count: int) -> None:
    assert rejection(sql) == f"expected exactly one statement, found {count}"


@pytest.mark.parametrize(
    "sql", ["", "   \n\t ", ";", " ;; ; ", "-- just a comment", "/* block */", "/* a */ ; -- b"]
)
def test_rejects_empty_sql(sql: str) -> None:
    with pytest.raises(SqlRejected, match=r"^SQL is empty"):
        check_read_only_select(sql)


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELEC 1", 'syntax error at or near "SELEC"'),
        ("SELECT * FROM", "syntax error at end of input"),
        ("SELECT 'unterminated", "unterminated quoted string"),
        ("SELECT 1 /* unterminated", "unterminated /* comment"),
        ("SELECT 1 INTO t", "SELECT INTO not supported"),
    ],
)
def test_syntax_errors_carry_duckdb_first_line(sql: str, fragment: str) -> None:
    message = rejection(sql)
    assert message.startswith("SQL syntax error: Parser Error: ")
    assert fragment in message
    assert "\n" not in message  # no caret diagram or stack trace


def test_pivot_without_in_list_is_rejected_with_advice() -> None:
    for sql in ("PIVOT person ON country", "SELECT * FROM (PIVOT person ON country)"):
        with pytest.raises(SqlRejected, match=r"PIVOT without an explicit IN \(\.\.\.\) value list"):
            check_read_only_select(sql)


def test_non_string_is_rejected() -> None:
    with pytest.raises(SqlRejected, match="must be a string"):
        check_read_only_select(None)  # type: ignore[arg-type]


def test_sql_rejected_is_a_value_error() -> None:
    assert issubclass(SqlRejected, ValueError)


@pytest.mark.parametrize(
    ("sql", "normalized"),
    [
        ("  SELECT 1;  ", "SELECT 1"),
        ("SELECT 1;;;", "SELECT 1"),
        (";; SELECT 1", "SELECT 1"),
        ("SELECT 'a;b' ;", "SELECT 'a;b'"),
        ("SELECT 1 -- trailing", "SELECT 1 -- trailing"),
        ("SELECT 1; -- after the semicolon", "SELECT 1  -- after the semicolon"),
        ("/* lead */ SELECT 1 /* tail */ ;", "/* lead */ SELECT 1 /* tail */"),
        ("SELECT 'é😀' AS \"ü\";", "SELECT 'é😀' AS \"ü\""),
    ],
)
def test_normalization_strips_whitespace_and_semicolons_only(sql: str, normalized: str) -> None:
    assert check_read_only_select(sql) == normalized


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id FROM person;",
        "SELECT id FROM person -- all of them",
        "SELECT id FROM person; -- all of them",
        "SELECT id FROM person /* block */",
        "/* block */ SELECT id -- note\nFROM person -- end",
        "SELECT id FROM person ORDER BY id LIMIT 7",
        "FROM person",
    ],
)
@pytest.mark.parametrize("limit", [1, 3, 100])
def test_wrapped_sql_runs_and_limits_rows(sql: str, limit: int, crm: duckdb.DuckDBPyConnection) -> None:
    wrapped = wrap_with_limit(check_read_only_select(sql), limit)
    assert wrapped.startswith("SELECT * FROM (\n") and wrapped.endswith(f"\n) LIMIT {limit}")
    rows = crm.execute(wrapped).fetchall()
    expected = min(limit, 7 if "LIMIT 7" in sql else 10)
    assert len(rows) == expected


def test_wrap_strips_trailing_semicolons_itself(crm: duckdb.DuckDBPyConnection) -> None:
    wrapped = wrap_with_limit("SELECT id FROM person; -- done\n;", 2)
    assert ";" not in wrapped
    assert len(crm.execute(wrapped).fetchall()) == 2


def test_wrap_does_not_glue_statements_together() -> None:
    # Unchecked multi-statement text stays multi-statement, so it cannot run as one wrapped query.
    with pytest.raises(duckdb.ParserException):
        duckdb.extract_statements(wrap_with_limit("SELECT 1; DROP TABLE person", 5))


@pytest.mark.parametrize("limit", [0, -1, 1.5, "10", True, None])
def test_wrap_rejects_bad_limits(limit: object) -> None:
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        wrap_with_limit("SELECT 1", limit)  # type: ignore[arg-type]


def test_statement_that_does_not_survive_wrapping_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    # No accepted DuckDB 1.5 statement fails to wrap today; the guard still refuses if one ever does.
    import queryall.logic.sql_guard as guard

    monkeypatch.setattr(guard, "wrap_with_limit", lambda sql, limit: f"SELECT * FROM ({sql}")
    with pytest.raises(SqlRejected, match=r"^SELECT statement cannot be used as a subquery: Parser Error"):
        guard.check_read_only_select("SELECT 1")
    monkeypatch.setattr(guard, "wrap_with_limit", lambda sql, limit: f"{sql}; DROP TABLE person")
    with pytest.raises(SqlRejected, match=r"^SELECT statement cannot be used as a subquery$"):
        guard.check_read_only_select("SELECT 1")
