"""The table catalog in DynamoDB (the CatalogTable of the template).

DynamoDB rather than an S3 object because submit needs one small keyed read on its hot path (the
summary item), PlanTargets and `GET /query-all/databases` page through tenants in key order, and a
refresh rewrites only the tenants that changed. Layout, one partition per kind:

* `pk = "tenant", sk = <bucket>`: one tenant's tables and columns (`entry`, JSON);
* `pk = "summary", sk = "tables"`: every table name any tenant has, plus when it was refreshed.

Submit reads only the summary: the tenants' entry models are imported by the methods that read or
write them (the functions that call those import `models.catalog` anyway), not at submit's cold start.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.aws import client
from queryall.models.catalog_summary import CatalogSummary

if TYPE_CHECKING:
    from queryall.models.catalog import TenantCatalogEntry

_TENANT = "tenant"
_SUMMARY_KEY = {"pk": {"S": "summary"}, "sk": {"S": "tables"}}
# Well under DynamoDB's 400 KB item limit; a tenant described by more keeps its table names only.
_MAX_ENTRY_BYTES = 300 * 1024
_BATCH = 25  # BatchWriteItem's limit


class CatalogStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def summary(self) -> CatalogSummary | None:
        item = client("dynamodb").get_item(TableName=self.table_name, Key=_SUMMARY_KEY).get("Item")
        return CatalogSummary.model_validate_json(item["entry"]["S"]) if item else None

    def put_summary(self, summary: CatalogSummary) -> None:
        client("dynamodb").put_item(
            TableName=self.table_name, Item={**_SUMMARY_KEY, "entry": {"S": summary.model_dump_json()}}
        )

    def page(self, limit: int, after: str | None = None) -> tuple[list[TenantCatalogEntry], str | None]:
        """Up to `limit` tenants in bucket order, starting after bucket `after`; and the last bucket
        returned when more may follow."""
        kwargs: dict = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _TENANT}},
            "Limit": limit,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {"pk": {"S": _TENANT}, "sk": {"S": after}}
        from queryall.models.catalog import TenantCatalogEntry

        response = client("dynamodb").query(**kwargs)
        entries = [TenantCatalogEntry.model_validate_json(item["entry"]["S"]) for item in response["Items"]]
        last = response.get("LastEvaluatedKey")
        return entries, (last["sk"]["S"] if last else None)

    def entries(self) -> dict[str, TenantCatalogEntry]:
        """Every tenant in the catalog, by bucket."""
        from queryall.models.catalog import TenantCatalogEntry

        found: dict[str, TenantCatalogEntry] = {}
        paginator = client("dynamodb").get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _TENANT}},
        )
        for page in pages:
            for item in page["Items"]:
                entry = TenantCatalogEntry.model_validate_json(item["entry"]["S"])
                found[entry.bucket] = entry
        return found

    def write(self, entries: Iterable[TenantCatalogEntry], removed: Iterable[str]) -> None:
        requests = [{"PutRequest": {"Item": {"pk": {"S": _TENANT}, "sk": {"S": e.bucket},
                                             "entry": {"S": _entry_json(e)}}}} for e in entries]
        requests += [{"DeleteRequest": {"Key": {"pk": {"S": _TENANT}, "sk": {"S": b}}}} for b in removed]
        for start in range(0, len(requests), _BATCH):
            self._batch_write(requests[start: start + _BATCH])

    def _batch_write(self, requests: list[dict]) -> None:
        pending = {self.table_name: requests}
        for attempt in range(8):
            pending = client("dynamodb").batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off, then retry what is left
        raise RuntimeError("catalog write kept being throttled")


def _entry_json(entry: TenantCatalogEntry) -> str:
    text = entry.model_dump_json()
    if len(text.encode()) <= _MAX_ENTRY_BYTES:
        return text
    names_only = [t.model_copy(update={"columns": None}) for t in entry.tables]
    return entry.model_copy(update={"tables": names_only}).model_dump_json()


class RefreshUnavailable(RuntimeError):
    pass


def start_refresh(function_name: str) -> None:
    """Run the refresh function in the background (it can take longer than an API request may)."""
    try:
        client("lambda").invoke(FunctionName=function_name, InvocationType="Event", Payload=b'{"source": "api"}')
    except (ClientError, BotoCoreError) as error:
        raise RefreshUnavailable(str(error)) from error
