"""Job items in DynamoDB."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from queryall.dal.aws import client
from queryall.models.job import Job, JobStatus

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


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

    def get(self, job_id: str) -> Job | None:
        # Consistent read: a poll right after completion must see it.
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        values = {k: _deserializer.deserialize(v) for k, v in item.items()}
        return Job.model_validate(values)

    def finish(self, job_id: str, status: JobStatus, attributes: dict[str, Any]) -> bool:
        """Move a processing job to a final status; False when it was not processing (or is gone)."""
        values = {"status": status.value, **attributes}
        names = {f"#a{i}": name for i, name in enumerate(values)}
        item_values = {f":v{i}": _serializer.serialize(v) for i, v in enumerate(values.values())}
        item_values[":processing"] = {"S": JobStatus.PROCESSING.value}
        assignments = ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
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


def _decimal(value: float):  # DynamoDB numbers go through Decimal, never float
    from decimal import Decimal

    return Decimal(str(value))
