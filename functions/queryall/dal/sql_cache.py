"""SQL generated for a question, kept in the jobs table for a job's lifetime so that the same question
on the same schema and generator is not sent to the generator again.

One item per (question, schema version, generator): `job_id = "sql-cache:<sha256>"`, with the SQL, the
tables it names and `expires_at` (the table's TTL attribute). The key is not a job id, so poll, wait and
the job list never see it, and it has no `owner`, so the owner index leaves it out.
"""

from __future__ import annotations

import hashlib
import json

from queryall.dal.aws import client

KEY_PREFIX = "sql-cache:"


def cache_key(question: str, schema_version: str, generator: str) -> str:
    digest = hashlib.sha256(json.dumps([question, schema_version, generator]).encode()).hexdigest()
    return KEY_PREFIX + digest


class SqlCache:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def get(self, key: str, now: float) -> tuple[str, list[str]] | None:
        item = client("dynamodb").get_item(TableName=self.table_name, Key={"job_id": {"S": key}}).get("Item")
        # TTL deletion lags; an expired item is a miss.
        if item is None or int(item["expires_at"]["N"]) <= now:
            return None
        return item["sql"]["S"], [t["S"] for t in item.get("tables", {}).get("L", [])]

    def put(self, key: str, sql: str, tables: list[str], expires_at: int) -> None:
        client("dynamodb").put_item(TableName=self.table_name, Item={
            "job_id": {"S": key}, "sql": {"S": sql}, "tables": {"L": [{"S": t} for t in tables]},
            "expires_at": {"N": str(expires_at)},
        })
