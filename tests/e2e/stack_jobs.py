"""Helpers the end-to-end job tests share: a slow but ordinary query, the seeded tenants' buckets and a
job's item as the local stack's table holds it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import CORRUPT_BUCKET


def slow_sql(rows: int) -> str:
    """About 8 ns per row on one core: 100,000,000 rows is ~1 s per tenant."""
    return f"SELECT count(*) AS n FROM range({rows}) t(i) WHERE hash(i) % 1000 = 0"


def buckets(tenants_dir: Path, count: int | None = None) -> list[str]:
    found = sorted(p.stem.removeprefix("warehouse_") for p in tenants_dir.glob("warehouse_*.duckdb")
                   if p.stem.removeprefix("warehouse_") != CORRUPT_BUCKET)
    return found[:count] if count else found


def job_item(local_stack, job_id: str) -> dict:
    item = local_stack.client("dynamodb").get_item(
        TableName=local_stack.dynamodb_table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True)["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}
