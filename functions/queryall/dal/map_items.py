"""The targets of a distributed Map, as the JSON array its ItemReader reads from S3."""

from __future__ import annotations

import json

from queryall.dal.aws import client
from queryall.dal.result_files import job_prefix
from queryall.models.workflow import MapItem


def map_items_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}map-items.json"


class MapItemStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, job_id: str, items: list[MapItem]) -> str:
        key = map_items_key(job_id)
        body = json.dumps([item.model_dump() for item in items], separators=(",", ":")).encode()
        client("s3").put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    def get(self, key: str) -> list[MapItem]:
        body = client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return [MapItem.model_validate(item) for item in json.loads(body)]
