"""Calls the SQL guard function, which parses SQL with DuckDB so the submit function need not load it."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.aws import client


class SqlGuardUnavailable(RuntimeError):
    pass


class SqlGuardClient:
    def __init__(self, function_name: str) -> None:
        self.function_name = function_name

    def check(self, sql: str) -> dict:
        """Returns the guard's verdict: {"ok": true, "sql": normalized} or {"ok": false, "message": ...}."""
        try:
            response = client("lambda").invoke(
                FunctionName=self.function_name, Payload=json.dumps({"sql": sql}).encode()
            )
            payload = json.loads(response["Payload"].read() or b"null")
        except (ClientError, BotoCoreError, ValueError) as error:
            raise SqlGuardUnavailable(str(error)) from error
        if response.get("FunctionError") or not isinstance(payload, dict) or "ok" not in payload:
            raise SqlGuardUnavailable(f"SQL guard failed: {payload}")
        return payload
