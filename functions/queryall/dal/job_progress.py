"""A running job's progress counters, kept on its item and updated only while it is processing.

Workers add to the counters with UpdateItem ADD, which DynamoDB applies atomically: concurrent
batches never lose each other's updates. Every update is conditional on the job still processing,
so a cancelled, finished or expired (deleted) job is never touched, nor re-created by an ADD.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.aws import client
from queryall.models.job import JobStatus

_PROCESSING = "#status = :processing"


class ProgressUpdateFailed(RuntimeError):
    """DynamoDB did not take the update (other than because the job stopped processing)."""


class Update(Enum):
    APPLIED = "applied"
    NOT_PROCESSING = "not_processing"  # cancelled or finished (or, for set_total, planned already)
    NO_JOB = "no_job"  # expired and deleted, or never created (a step invoked on its own)


class JobProgressCounters:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def set_total(self, job_id: str, total: int, missing: int) -> Update:
        """Record the plan's size once; requested buckets without a database are done (errored) already."""
        return self._update(
            job_id,
            "SET databases_total = :total ADD databases_done :missing, databases_errored :missing",
            f"{_PROCESSING} AND attribute_not_exists(databases_total)",
            {":total": total, ":missing": missing},
        )

    def add(self, job_id: str, done: int, errored: int, rows: int) -> Update:
        return self._update(
            job_id,
            "ADD databases_done :done, databases_errored :errored, rows_so_far :rows",
            _PROCESSING,
            {":done": done, ":errored": errored, ":rows": rows},
        )

    def set_final(self, job_id: str, total: int, errored: int, rows: int) -> Update:
        """The exact final counts, from every tenant's outcome, just before the job completes: batches that
        failed (and so never reported) are counted, and the counters end at the total."""
        return self._update(
            job_id,
            "SET databases_total = :total, databases_done = :total, databases_errored = :errored, "
            "rows_so_far = :rows",
            _PROCESSING,
            {":total": total, ":errored": errored, ":rows": rows},
        )

    def _update(self, job_id: str, expression: str, condition: str, numbers: dict[str, int]) -> Update:
        values: dict[str, Any] = {name: {"N": str(value)} for name, value in numbers.items()}
        values[":processing"] = {"S": JobStatus.PROCESSING.value}
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",  # tells a stopped job from a missing one
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return Update.NOT_PROCESSING if error.response.get("Item") else Update.NO_JOB
            raise ProgressUpdateFailed(str(error)) from error
        except BotoCoreError as error:
            raise ProgressUpdateFailed(str(error)) from error
        return Update.APPLIED
