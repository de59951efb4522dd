"""A request at the documented maximum: 10,000 buckets of the longest ids, run by the real state machine
on the local stack. The plan, the workflow input and the job item must stay within Step Functions' and
DynamoDB's limits whatever the request; the job list must not read results or per-bucket data."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest

from tests.conftest import CORRUPT_BUCKET, Api

pytestmark = pytest.mark.timeout(600)

# A caller of its own: these jobs would otherwise head the other tests' job lists.
LARGE_KEY = "large-requests-api-key"
MAX_BUCKETS = 10_000


def real_buckets(tenants_dir: Path) -> list[str]:
    return sorted(p.stem.removeprefix("warehouse_") for p in tenants_dir.glob("warehouse_*.duckdb"))


def longest_ids(count: int) -> list[str]:
    """Distinct bucket ids of 63 characters, the longest a bucket id may be."""
    return [f"missing-{i:05d}-".ljust(63, "x") for i in range(count)]


@pytest.fixture(scope="module")
def large_api(local_stack) -> Api:
    from queryall.dal import api_keys

    ssm = local_stack.client("ssm")
    name = local_stack.api_keys_parameter_name
    before = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Value=f"{before},{LARGE_KEY}", Type="SecureString", Overwrite=True)
    api_keys.clear_cache()
    try:
        yield Api(local_stack.url, LARGE_KEY)
    finally:
        ssm.put_parameter(Name=name, Value=before, Type="SecureString", Overwrite=True)
        api_keys.clear_cache()


@pytest.fixture(scope="module")
def large_jobs(large_api: Api, tenants_dir: Path) -> list[tuple[str, dict]]:
    """Two completed jobs, each naming 10,000 buckets: every real tenant and thousands without a database."""
    real = real_buckets(tenants_dir)
    requested = real + longest_ids(MAX_BUCKETS - len(real))
    job_ids = [large_api.submit({"sql": "SELECT 1 AS one", "buckets": requested}) for _ in range(2)]
    return [(job_id, large_api.wait(job_id, timeout=400)) for job_id in job_ids]


def test_a_job_naming_10000_buckets_completes_with_every_bucket_reported(large_jobs, tenants_dir: Path) -> None:
    real = real_buckets(tenants_dir)
    missing = longest_ids(MAX_BUCKETS - len(real))
    for _job_id, body in large_jobs:
        assert "meta" in body, body
        meta = body["meta"]
        healthy = [b for b in real if b != CORRUPT_BUCKET]
        assert meta["databases_queried"] == len(healthy)
        assert meta["databases_errored"] == len(missing) + 1
        assert set(meta["errors"]) == {*missing, CORRUPT_BUCKET}
        assert meta["errors"][missing[-1]].startswith(f"No database for bucket '{missing[-1]}'")
        assert body["data"]["rows"] == [[b, 1] for b in healthy]


class _Calls:
    """The AWS requests the functions make, with the bytes of each answer (the functions share boto3's
    default session in the local stack)."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str, int]] = []

    def __enter__(self) -> _Calls:
        from queryall.settings import reset_caches

        reset_caches()  # clients made from now on carry the hook
        boto3._get_default_session().events.register("after-call", self._record, unique_id="count-calls")
        return self

    def _record(self, model, http_response, **_) -> None:
        self.made.append((model.service_model.service_name, model.name, len(http_response.content or b"")))

    def operations(self, service: str) -> list[str]:
        return [name for made_service, name, _ in self.made if made_service == service]

    def bytes_read(self, service: str) -> int:
        return sum(size for made_service, _, size in self.made if made_service == service)

    def __exit__(self, *exc: object) -> None:
        boto3._get_default_session().events.unregister("after-call", unique_id="count-calls")


def test_the_job_list_reads_no_result_nor_per_bucket_data_and_answers_fast(large_api: Api, large_jobs) -> None:
    with _Calls() as calls:
        started = time.perf_counter()
        result = large_api.request("GET", "/query-all/jobs?limit=20")
        listed_in = time.perf_counter() - started
    assert result.status == 200, result.body
    jobs = result.body["data"]["jobs"]
    assert [j["job_id"] for j in jobs] == [job_id for job_id, _ in reversed(large_jobs)]
    assert all(j["request"]["buckets"] == MAX_BUCKETS and j["status"] == "completed" for j in jobs)
    assert calls.operations("s3") == []
    assert calls.operations("dynamodb") == ["Query"] and calls.bytes_read("dynamodb") < 8 * 1024
    print(f"job list of two 10,000-bucket jobs: {listed_in:.3f} s")


def test_polling_a_10000_bucket_job_reads_only_what_its_answer_needs(large_api: Api, large_jobs) -> None:
    job_id, body = large_jobs[0]
    with _Calls() as calls:
        started = time.perf_counter()
        result = large_api.request("GET", f"/query-all/jobs/{job_id}")
        polled_in = time.perf_counter() - started
    assert result.status == 200
    assert result.body["meta"]["errors"] == body["meta"]["errors"]
    assert calls.operations("s3") == ["GetObject"]  # the reported tenants, once
    assert calls.operations("dynamodb") == ["GetItem"] and calls.bytes_read("dynamodb") < 8 * 1024
    print(f"poll of a 10,000-bucket job: {polled_in:.3f} s")
