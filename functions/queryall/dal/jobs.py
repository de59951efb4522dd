"""Job items in DynamoDB."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from queryall.dal.aws import client
from queryall.models.job import Job, JobStatus

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# What waiting and listing read of a job: everything but its result. The owner index projects exactly
# these (template.yaml, JobsTable), so a listed job validates like a read one.
SUMMARY_ATTRIBUTES = (
    "job_id", "status", "owner", "created_at", "submitted_at", "expires_at", "request", "finished_at",
    "error_code", "databases_total", "databases_done", "databases_errored", "rows_so_far",
)
OWNER_INDEX = "owner-created_at"
_BATCH_GET_KEYS = 100  # BatchGetItem's limit
_BATCH_GET_ATTEMPTS = 8
# Expired jobs are filtered after DynamoDB's Limit, so a page may need a few queries to fill.
_LIST_QUERIES = 5


class JobReadIncomplete(RuntimeError):
    """DynamoDB left keys unprocessed after every retry (sustained throttling)."""


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def job_from_item(item: dict[str, Any]) -> Job:
    """A job from its item in DynamoDB's attribute-value JSON (as read, or as a stream image holds it)."""
    values = {k: _deserializer.deserialize(v) for k, v in item.items()}
    # Binary attributes come back wrapped; the model holds plain bytes.
    return Job.model_validate({k: v.value if isinstance(v, Binary) else v for k, v in values.items()})


def job_from_stream_image(image: dict[str, Any]) -> Job:
    """A job from a DynamoDB stream record's image, as Lambda hands it over (binary values in base64)."""
    return job_from_item({name: {"B": base64.b64decode(value["B"])} if "B" in value else value
                          for name, value in image.items()})


class JobStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def create(self, job: Job) -> None:
        values = job.model_dump(mode="json", exclude_none=True)
        values["submitted_at"] = _decimal(job.submitted_at)
        client("dynamodb").put_item(
            TableName=self.table_name,
            Item=_to_item(values),
            ConditionExpression="attribute_not_exists(job_id)",
        )

    def delete(self, job_id: str) -> None:
        """Forget a job that was never started (refused by a quota right after it was recorded)."""
        client("dynamodb").delete_item(TableName=self.table_name, Key={"job_id": {"S": job_id}})

    def get(self, job_id: str) -> Job | None:
        # Consistent read: a poll right after completion must see it.
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else job_from_item(item)

    def get_many(self, job_ids: Sequence[str], *, summary: bool = False) -> dict[str, Job]:
        """The jobs among job_ids that exist, by id (consistent BatchGetItem reads); with summary, only
        SUMMARY_ATTRIBUTES are transferred, never the result."""
        found: dict[str, Job] = {}
        for start in range(0, len(job_ids), _BATCH_GET_KEYS):
            request: dict[str, Any] = {
                "Keys": [{"job_id": {"S": job_id}} for job_id in job_ids[start: start + _BATCH_GET_KEYS]],
                "ConsistentRead": True,
            }
            if summary:
                request["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(SUMMARY_ATTRIBUTES)))
                request["ExpressionAttributeNames"] = {f"#p{i}": name for i, name in enumerate(SUMMARY_ATTRIBUTES)}
            pending = {self.table_name: request}
            for attempt in range(_BATCH_GET_ATTEMPTS):
                response = client("dynamodb").batch_get_item(RequestItems=pending)
                items = response.get("Responses", {}).get(self.table_name, [])
                for item in items:
                    job = job_from_item(item)
                    found[job.job_id] = job
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                if not items:  # nothing read at all: throttled, so back off (a size-capped answer is not)
                    time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise JobReadIncomplete(f"{len(pending[self.table_name]['Keys'])} jobs could not be read")
        return found

    def list_by_owner(
        self, owner: str, limit: int, *, after: tuple[str, str] | None, now: float
    ) -> tuple[list[Job], tuple[str, str] | None]:
        """The owner's unexpired jobs newest first (summaries, from the owner index), at most `limit`, and the
        (created_at, job_id) to continue after, None at the end. The index is eventually consistent."""
        jobs: list[Job] = []
        start = after
        for _ in range(_LIST_QUERIES):
            query: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": OWNER_INDEX,
                "KeyConditionExpression": "#owner = :owner",
                "FilterExpression": "#expires_at > :now",
                "ExpressionAttributeNames": {"#owner": "owner", "#expires_at": "expires_at"},
                "ExpressionAttributeValues": {":owner": {"S": owner}, ":now": {"N": repr(now)}},
                "ScanIndexForward": False,
                "Limit": limit - len(jobs),
            }
            if start is not None:
                query["ExclusiveStartKey"] = {"owner": {"S": owner}, "created_at": {"S": start[0]},
                                              "job_id": {"S": start[1]}}
            response = client("dynamodb").query(**query)
            jobs.extend(job_from_item(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            start = (last["created_at"]["S"], last["job_id"]["S"]) if last else None
            if start is None or len(jobs) >= limit:
                break
        return jobs, start

    def record_generated_sql(self, job_id: str, sql: str) -> bool:
        """Keep the SQL generated for a question job in its request (poll, wait, pages and the job list
        show it from there); False when the job is no longer processing."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #request.#sql = :sql",
                ConditionExpression="#status = :processing",
                ExpressionAttributeNames={"#request": "request", "#sql": "sql", "#status": "status"},
                ExpressionAttributeValues={":sql": {"S": sql}, ":processing": {"S": JobStatus.PROCESSING.value}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def finish(self, job_id: str, status: JobStatus, attributes: dict[str, Any]) -> bool:
        """Move a processing job to a final status; False when it was not processing (or is gone)."""
        values = {"status": status.value, **attributes}
        names = {f"#a{i}": name for i, name in enumerate(values)}
        item_values = {f":v{i}": _serializer.serialize(v) for i, v in enumerate(values.values())}
        item_values[":processing"] = {"S": JobStatus.PROCESSING.value}
        item_values[":one"] = {"N": "1"}
        names["#sequence"] = "state_sequence"
        # Every transition counts itself: the state-change event's sequenceNumber (logic.job_events).
        # A job created before items counted was at 1.
        assignments = ", ".join([*(f"#a{i} = :v{i}" for i in range(len(values))),
                                 "#sequence = if_not_exists(#sequence, :one) + :one"])
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=f"SET {assignments}",
                ConditionExpression="#a0 = :processing",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=item_values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def list_everyone(self, now: float) -> list[Job]:
        """Every unexpired job's summary (admin listing). A Scan: jobs live an hour (TTL), so the table
        holds about an hour of jobs; this is for an operator, never a caller's hot path."""
        jobs: list[Job] = []
        names = {f"#p{i}": name for i, name in enumerate(SUMMARY_ATTRIBUTES)}
        paginator = client("dynamodb").get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.table_name, ProjectionExpression=", ".join(names),
            # Jobs only: the table also holds other items (the SQL cache's), which have no owner.
            FilterExpression="#expires_at > :now AND attribute_exists(#owner) AND attribute_exists(#created)",
            ExpressionAttributeNames={**names, "#expires_at": "expires_at", "#owner": "owner",
                                      "#created": "created_at"},
            ExpressionAttributeValues={":now": {"N": repr(now)}},
        ):
            jobs.extend(job_from_item(item) for item in page.get("Items", []))
        return jobs


def _decimal(value: float):  # DynamoDB numbers go through Decimal, never float
    from decimal import Decimal

    return Decimal(str(value))
