"""Synchronous check of submitted SQL with DuckDB's parser (called by the submit function)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.handlers.function import function_handler
from queryall.logic.sql_guard import SqlRejected, check_read_only_select


def check_sql(event: dict, context: LambdaContext) -> dict:
    sql = event.get("sql")
    if not isinstance(sql, str):
        return {"ok": False, "message": "sql must be a string"}
    try:
        return {"ok": True, "sql": check_read_only_select(sql)}
    except SqlRejected as rejection:
        return {"ok": False, "message": str(rejection)}


handler = function_handler(check_sql)
