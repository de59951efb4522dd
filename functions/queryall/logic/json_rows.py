"""Deterministic DuckDB -> JSON rendering of query results (one compact JSON array per row).

Rows are rendered vectorised by DuckDB itself (one projection over the Arrow table in an in-memory
connection with ``SET TimeZone='UTC'``), never by a per-value Python loop. Each value becomes JSON text
(``to_json`` or a type-specific expression) and the texts are concatenated; they are never handed back
to DuckDB as JSON arguments (``json_array`` etc.), which re-parse numbers into doubles and would round
big DECIMAL/HUGEINT values. The output is strict JSON: ``json.loads`` accepts it even with a
``parse_constant`` hook that rejects NaN/Infinity.

Results reach this module as Arrow (the per-tenant query exports with DuckDB's default Arrow settings),
so the "column type" below is what DuckDB reports when it reads that Arrow column back, which is what
:func:`column_types` returns.

=========================  ===========================  ============================================
DuckDB type in the query   column type reported          JSON value
=========================  ===========================  ============================================
TINYINT/SMALLINT/          same                          number, exact (``-5``)
INTEGER/BIGINT
UTINYINT/USMALLINT/        same                          number, exact (``18446744073709551615``)
UINTEGER/UBIGINT
HUGEINT                    DECIMAL(38,0)                 number, exact, all 38 digits (JavaScript
                                                         clients lose precision beyond 2^53)
UHUGEINT                   VARCHAR                       string of the decimal digits. DuckDB's Arrow
                                                         export of UHUGEINT overflows above 2^127, so
                                                         the per-tenant query step casts UHUGEINT (and
                                                         BIT) result columns to VARCHAR before export
DECIMAL(p,s)               DECIMAL(p,s)                  number, exact, DuckDB's text with the full
                                                         scale (``10.00`` for DECIMAL(12,2))
FLOAT                      FLOAT                         number, shortest float text (``0.1``,
                                                         ``3.4e+38``)
DOUBLE                     DOUBLE                        number, shortest round-trip text (``0.1``,
                                                         ``1e300``, ``-0.0``)
FLOAT/DOUBLE NaN, +-inf    FLOAT/DOUBLE                  string ``"NaN"``, ``"Infinity"``,
                                                         ``"-Infinity"`` -- at any nesting depth
                                                         (inside lists, arrays, structs, map values)
VARCHAR                    VARCHAR                       string (JSON escapes, UTF-8 kept)
BOOLEAN                    BOOLEAN                       ``true`` / ``false``
DATE                       DATE                          string ``"2024-01-02"`` (``"infinity"``)
TIME                       TIME                          string ``"03:04:05.123"``
TIMETZ                     TIME                          string of the local time; DuckDB's Arrow
                                                         export drops the offset
TIMESTAMP                  TIMESTAMP                     string ``"2024-01-02 03:04:05.123456"``
TIMESTAMP_S / _MS / _NS    TIMESTAMP_S / _MS / _NS       string at that precision
                                                         (``"... 03:04:05.123456789"`` for _NS)
TIMESTAMPTZ                TIMESTAMP WITH TIME ZONE      string in UTC ``"2024-01-02 01:04:05+00"``
INTERVAL                   INTERVAL                      string ``"1 month 2 days 03:00:00"``
UUID                       VARCHAR                       string ``"00000000-0000-...-000000000001"``
BLOB                       BLOB                          string, standard base64 with padding
                                                         (``"AP8="`` for ``\\x00\\xFF``); base64 is
                                                         unambiguous, unlike DuckDB's ``\\xHH`` text
BIT                        VARCHAR                       string ``"0101"`` (cast before export)
LIST / ARRAY               INTEGER[] / INTEGER[3]        JSON array, elements mapped by these rules
STRUCT                     STRUCT(x INTEGER, y VARCHAR)  JSON object in field order
MAP                        MAP(VARCHAR, INTEGER)         JSON object; keys are DuckDB's VARCHAR text
                                                         of the key, values mapped by these rules
UNION                      UNION(...)                    ``{"<tag>": value}``; if a member type holds
                                                         FLOAT/DOUBLE/DECIMAL/BLOB/JSON, the DuckDB
                                                         VARCHAR text of the value as a string
ENUM                       VARCHAR                       string of the label
JSON                       VARCHAR (or JSON)             string holding the JSON text (e.g.
                                                         ``"{\\"k\\":1}"``); never spliced in raw, since
                                                         DuckDB's JSON may contain NaN
NULL (any type)            type of the column            ``null``
=========================  ===========================  ============================================
"""

from __future__ import annotations

import functools

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

__all__ = ["column_types", "table_to_json_rows", "write_csv", "write_parquet"]

# Type ids (DuckDBPyType.id) whose JSON text differs from plain to_json() and so need an expression.
_FLOATS = frozenset({"float", "double"})
_SPECIAL = _FLOATS | {"blob", "json", "decimal"}
_NESTED = frozenset({"list", "array", "struct", "map", "union"})


@functools.cache
def _database() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # Deterministic text for TIMESTAMPTZ regardless of the machine's zone (GLOBAL: every cursor has it).
    con.execute("SET GLOBAL TimeZone='UTC'")
    return con


def _connect() -> duckdb.DuckDBPyConnection:
    """A connection of its own (thread-safe) to one in-memory database per process: opening a database
    costs ~10 ms, a cursor on it ~10 us, and a job renders and writes its result several times."""
    return _database().cursor()


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _children(ty: DuckDBPyType) -> list[tuple[str, DuckDBPyType]]:
    if ty.id in {"list", "array"}:
        return [("child", ty.children[0][1])]
    if ty.id == "union":
        return list(ty.children[1:])  # the first child is the hidden tag
    return list(ty.children)


def _kind(ty: DuckDBPyType) -> str:
    # JSON is a VARCHAR with an alias: its id is "varchar", only its name tells it apart.
    return "json" if str(ty) == "JSON" else ty.id


def _needs_rewrite(ty: DuckDBPyType) -> bool:
    if _kind(ty) in _SPECIAL:
        return True
    if ty.id in _NESTED:
        return any(_needs_rewrite(child) for _name, child in _children(ty))
    return False


def _json_text(expr: str, ty: DuckDBPyType, depth: int = 0) -> str:
    """SQL expression giving the JSON text (VARCHAR, NULL for SQL NULL) of ``expr`` of type ``ty``.

    Values are rendered to text and concatenated, never passed to DuckDB as JSON arguments: json_array
    and friends re-parse JSON arguments into doubles, which would round big DECIMAL/HUGEINT values.
    """
    if not _needs_rewrite(ty):
        return f"CAST(to_json({expr}) AS VARCHAR)"
    kind = _kind(ty)
    if kind in _FLOATS:
        # FLOAT uses its own shortest text so 0.1::FLOAT prints 0.1, not 0.10000000149011612.
        finite = f"CAST({expr} AS VARCHAR)" if kind == "float" else f"CAST(to_json({expr}) AS VARCHAR)"
        return (
            f"CASE WHEN isnan({expr}) THEN '\"NaN\"' "
            f"WHEN isinf({expr}) AND {expr} > 0 THEN '\"Infinity\"' "
            f"WHEN isinf({expr}) THEN '\"-Infinity\"' "
            f"ELSE {finite} END"
        )
    if kind == "decimal":
        # DuckDB's decimal text is exact and keeps the scale (10.00); to_json goes via double for some widths.
        return f"CAST({expr} AS VARCHAR)"
    if kind == "blob":
        return f"'\"' || to_base64({expr}) || '\"'"
    if kind == "json":
        return f"CAST(to_json(CAST({expr} AS VARCHAR)) AS VARCHAR)"
    var = f"e{depth}"
    if kind in {"list", "array"}:
        inner = _json_text(var, ty.children[0][1], depth + 1)
        return (
            f"CASE WHEN {expr} IS NULL THEN NULL ELSE '[' || array_to_string("
            f"list_transform({expr}, lambda {var}: coalesce({inner}, 'null')), ',') || ']' END"
        )
    if kind == "struct":
        parts = []
        for index, (name, child) in enumerate(ty.children):
            field = f"struct_extract({expr}, {_quote_literal(name)})"
            key = f"CAST(to_json({_quote_literal(name)}) AS VARCHAR)"
            sep = "'{'" if index == 0 else "','"
            parts.append(f"{sep} || {key} || ':' || coalesce({_json_text(field, child, depth + 1)}, 'null')")
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE {' || '.join(parts)} || '}}' END"
    if kind == "map":
        key_text = f"CAST(to_json(CAST(struct_extract({var}, 'key') AS VARCHAR)) AS VARCHAR)"
        value_text = _json_text(f"struct_extract({var}, 'value')", ty.children[1][1], depth + 1)
        # Same shape as to_json(MAP): an object keyed by the VARCHAR text of each key, in map order.
        return (
            f"CASE WHEN {expr} IS NULL THEN NULL ELSE '{{' || array_to_string(list_transform("
            f"map_entries({expr}), lambda {var}: {key_text} || ':' || coalesce({value_text}, 'null')), ',')"
            f" || '}}' END"
        )
    # UNION holding a special type: its VARCHAR text as a JSON string, always valid.
    return f"CAST(to_json(CAST({expr} AS VARCHAR)) AS VARCHAR)"


def _relation(con: duckdb.DuckDBPyConnection, table: pa.Table) -> duckdb.DuckDBPyRelation:
    # Positional names avoid trouble with duplicate or odd column names in query results.
    renamed = table.rename_columns([f"c{i}" for i in range(table.num_columns)])
    return con.from_arrow(renamed)


def table_to_json_rows(table: pa.Table) -> list[str]:
    """Render every row of ``table`` as compact JSON array text (``[v1,v2,...]``) in column order."""
    if table.num_columns == 0:
        return ["[]"] * table.num_rows
    con = _connect()
    try:
        rel = _relation(con, table)
        pieces = ["'['"]
        for i, ty in enumerate(rel.types):
            if i:
                pieces.append("','")
            pieces.append(f"coalesce({_json_text(f'c{i}', ty)}, 'null')")
        pieces.append("']'")
        rendered = rel.project(f"concat({', '.join(pieces)}) AS row_json")
        # DuckDB keeps insertion order for a plain projection (preserve_insertion_order is on).
        return rendered.to_arrow_table().column(0).to_pylist()
    finally:
        con.close()


def column_types(table: pa.Table) -> list[dict]:
    """Name and DuckDB type name (e.g. ``DECIMAL(10,3)``, ``INTEGER[]``) of each column, in order."""
    if table.num_columns == 0:
        return []
    con = _connect()
    try:
        types = _relation(con, table).types
    finally:
        con.close()
    return [{"name": name, "type": str(ty)} for name, ty in zip(table.column_names, types, strict=True)]


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _named(rel: duckdb.DuckDBPyRelation, names: list[str]) -> duckdb.DuckDBPyRelation:
    # DuckDB's file writers make repeated names unique the way DuckDB does (a, a_1).
    return rel.project(", ".join(f"c{i} AS {_quote_identifier(name)}" for i, name in enumerate(names)))


def write_parquet(table: pa.Table, path: str) -> None:
    """Write ``table`` as Parquet with DuckDB's writer, which covers every DuckDB type (pyarrow's cannot
    write UNION or INTERVAL); DuckDB reads each value back as it was, except that a UNION (Parquet has
    none) comes back as a STRUCT of its tag and members."""
    con = _connect()
    try:
        _named(_relation(con, table), table.column_names).write_parquet(path)
    finally:
        con.close()


def write_csv(table: pa.Table, path: str) -> None:
    """Write ``table`` as CSV (header row, comma, ``"`` quoting, UTF-8). Each field is the value's JSON text
    as rendered above, with a JSON string written as its text: numbers exact, temporal values as in JSON
    (UTC), BLOB as base64, NaN/Infinity as those words, JSON columns as their JSON text, and LIST, ARRAY,
    STRUCT, MAP and UNION values as JSON. NULL is an empty field; an empty string is ``""``."""
    con = _connect()
    try:
        rel = _relation(con, table)
        texts = rel.project(", ".join(f"{_json_text(f'c{i}', ty)} AS c{i}" for i, ty in enumerate(rel.types)))
        fields = []
        for i, ty in enumerate(rel.types):
            if ty.id in _NESTED:
                fields.append(f"c{i}")
            else:  # a scalar rendered as a JSON string: unquote it (json_extract_string undoes the escapes)
                fields.append(f"CASE WHEN starts_with(c{i}, '\"') THEN json_extract_string(CAST(c{i} AS JSON), '$') "
                              f"ELSE c{i} END AS c{i}")
        _named(texts.project(", ".join(fields)), table.column_names).write_csv(path, header=True)
    finally:
        con.close()
