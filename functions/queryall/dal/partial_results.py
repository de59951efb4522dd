"""Partial results of query batches in S3, under the job's prefix."""

from __future__ import annotations

from queryall.dal.aws import client
from queryall.dal.result_files import job_prefix
from queryall.models.workflow import BatchSummary


def partial_key(job_id: str, batch_index: int, part: int) -> str:
    return f"{job_prefix(job_id)}partials/{batch_index:06d}-{part:03d}.arrow"


def summary_key(job_id: str, batch_index: int) -> str:
    return f"{job_prefix(job_id)}partials/{batch_index:06d}.json"


class PartialResultStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put_partial(self, key: str, body: bytes) -> None:
        client("s3").put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/vnd.apache.arrow.stream"
        )

    def get_partial(self, key: str) -> bytes:
        return client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put_summary(self, job_id: str, summary: BatchSummary) -> None:
        client("s3").put_object(
            Bucket=self.bucket,
            Key=summary_key(job_id, summary.batch_index),
            Body=summary.model_dump_json().encode(),
            ContentType="application/json",
        )

    def get_summary(self, job_id: str, batch_index: int) -> BatchSummary | None:
        s3 = client("s3")
        try:
            body = s3.get_object(Bucket=self.bucket, Key=summary_key(job_id, batch_index))["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return BatchSummary.model_validate_json(body)
