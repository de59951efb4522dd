"""JSON documents a job keeps in S3 under its prefix when they are too large for where they would
otherwise travel: a Step Functions state (256 KB) or the job item (400 KB).

- ``buckets.json``: the buckets a request named (submit writes it, PlanTargets reads it),
- ``plan-reports.json``: the planned tenants that are not queried (missing or skipped) with their messages,
- ``reported-tenants.json``: the final ``skipped`` and ``errors`` of a completed job (poll reads it).

They live as long as the job's other objects (the bucket's lifecycle rule on ``jobs/``).
"""

from __future__ import annotations

import json
from typing import Any

from queryall.dal.aws import client
from queryall.dal.result_files import job_prefix

REQUESTED_BUCKETS = "buckets.json"
PLAN_REPORTS = "plan-reports.json"
REPORTED_TENANTS = "reported-tenants.json"


class JobDocuments:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, job_id: str, name: str, value: Any) -> None:
        """Write ``value`` as JSON text."""
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        client("s3").put_object(Bucket=self.bucket, Key=job_prefix(job_id) + name, Body=body,
                                ContentType="application/json")

    def get(self, job_id: str, name: str) -> Any:
        body = client("s3").get_object(Bucket=self.bucket, Key=job_prefix(job_id) + name)["Body"].read()
        return json.loads(body)
