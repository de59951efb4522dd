"""SQL text for values the service puts into DuckDB statements itself (paths, names, a query to parse)."""

from __future__ import annotations


def sql_string(value: str) -> str:
    """`value` as a DuckDB string literal: quotes doubled (a backslash is an ordinary character)."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'
