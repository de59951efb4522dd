"""Per-principal quota counters in DynamoDB (the QuotasTable), each changed by one conditional write.

* `pk = "<owner>#running"`: `jobs`, a string set of the principal's running job ids. A job is added only
  while the set is smaller than the limit (`size(jobs) < :max` in the same write), so any number of
  concurrent submits never get past it.
* `pk = "<owner>#minute#<epoch minute>"`: `submits` in that minute, added only below the limit; the
  item expires (TTL) an hour later.
"""

from __future__ import annotations

from collections.abc import Iterable

from botocore.exceptions import ClientError

from queryall.dal.aws import client

RATE_ITEM_TTL_SECONDS = 3600


def _conditional(call: dict) -> bool:
    try:
        client("dynamodb").update_item(**call)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


class QuotaStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def count_submit(self, owner: str, minute: int, limit: int) -> bool:
        """Count one submit in `minute`; False (nothing counted) when `limit` were counted already."""
        return _conditional({
            "TableName": self.table_name, "Key": {"pk": {"S": f"{owner}#minute#{minute}"}},
            "UpdateExpression": "ADD submits :one SET expires_at = :expires",
            "ConditionExpression": "attribute_not_exists(submits) OR submits < :limit",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)},
                                          ":expires": {"N": str(minute * 60 + RATE_ITEM_TTL_SECONDS)}},
        })

    def take_running_slot(self, owner: str, job_id: str, limit: int) -> bool:
        """Add `job_id` to the owner's running jobs unless `limit` are running; False when they are."""
        return _conditional({
            "TableName": self.table_name, "Key": {"pk": {"S": f"{owner}#running"}},
            "UpdateExpression": "ADD jobs :job",
            "ConditionExpression": "attribute_not_exists(jobs) OR size(jobs) < :limit",
            "ExpressionAttributeValues": {":job": {"SS": [job_id]}, ":limit": {"N": str(limit)}},
        })

    def running_jobs(self, owner: str) -> set[str]:
        item = client("dynamodb").get_item(TableName=self.table_name, Key={"pk": {"S": f"{owner}#running"}},
                                           ConsistentRead=True).get("Item") or {}
        return set(item.get("jobs", {}).get("SS", []))

    def release_running_slots(self, owner: str, job_ids: Iterable[str]) -> None:
        ids = sorted(set(job_ids))
        if ids:  # DELETE from a set is idempotent: releasing twice is harmless
            client("dynamodb").update_item(
                TableName=self.table_name, Key={"pk": {"S": f"{owner}#running"}},
                UpdateExpression="DELETE jobs :ended", ExpressionAttributeValues={":ended": {"SS": ids}})
