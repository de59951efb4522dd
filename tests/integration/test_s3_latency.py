"""`queryall local serve --s3-latency-ms N --tenants-backend s3`: N ms before every S3 request the local
stack serves (measured), and the tenant folder served from the local S3 with the s3:// backend."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import duckdb
import pytest

from tests.conftest import CORRUPT_BUCKET, Api
from tests.integration.test_local_stack import child_env, read_line

pytestmark = pytest.mark.timeout(300)
LATENCY_MS = 120


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()


def test_the_latency_is_added_to_every_s3_request_in_process_and_over_http(local_stack) -> None:
    """The same requests, with and without the latency: each S3 request takes N ms longer, whether it
    comes from this process (boto3, handed to moto in-process) or over HTTP (DuckDB's httpfs in a
    query worker); other services are untouched. Every request is counted."""
    s3, dynamodb = local_stack.client("s3"), local_stack.client("dynamodb")
    s3.create_bucket(Bucket="latency-probe")
    s3.put_object(Bucket="latency-probe", Key="k", Body=b"x")
    over_http = s3.generate_presigned_url("get_object", Params={"Bucket": "latency-probe", "Key": "k"})
    moto = local_stack.moto

    def timings() -> dict[str, float]:
        runs: dict[str, list[float]] = {"boto3": [], "http": [], "dynamodb": []}
        for _ in range(5):
            runs["boto3"].append(_seconds(lambda: s3.head_object(Bucket="latency-probe", Key="k")))
            runs["http"].append(_seconds(lambda: _get(over_http)))
            runs["dynamodb"].append(_seconds(dynamodb.list_tables))
        return {name: min(values) for name, values in runs.items()}

    try:
        before = timings()
        counted = moto.request_counts["s3"]
        moto.s3_latency_ms = LATENCY_MS
        delayed = timings()
        assert moto.request_counts["s3"] - counted == 10
    finally:
        moto.s3_latency_ms = 0
        s3.delete_object(Bucket="latency-probe", Key="k")
        s3.delete_bucket(Bucket="latency-probe")
    # The fastest of five: every request waited at least N ms with the option, and well under it without
    # (the machine is shared and noisy, so the times over N are not asserted).
    for path in ("boto3", "http"):
        assert delayed[path] * 1000 >= LATENCY_MS > before[path] * 1000 + 40, (path, before, delayed)
    assert delayed["dynamodb"] * 1000 < LATENCY_MS, (before, delayed)


def test_serve_with_s3_tenants_and_latency(tenants_dir: Path, tmp_path: Path) -> None:
    """The CLI's options: the tenant folder is uploaded to the local S3 and queried from there (the rows
    equal the files'), and every S3 request of that server takes at least N ms."""
    process = subprocess.Popen(
        [sys.executable, "-m", "queryall_local", "local", "serve", "--port", "0", "--tenants-dir", str(tenants_dir),
         "--api-key", "k-1", "--tenants-backend", "s3", "--s3-latency-ms", str(LATENCY_MS)],
        cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = read_line(process, 120)
        assert "ready" in line and "in S3" in line, (line, process.poll())
        url = line.split(" at ", 1)[1].split()[0]
        moto_url = line.rsplit("moto ", 1)[1].strip()
        buckets = sorted(p.name.removeprefix("warehouse_").removesuffix(".duckdb")
                         for p in tenants_dir.glob("warehouse_*.duckdb"))
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        key = f"warehouse_{buckets[0]}.duckdb"
        waits = [_seconds(lambda: s3.head_object(Bucket="queryall-local-tenants", Key=key)) for _ in range(3)]
        assert min(waits) * 1000 >= LATENCY_MS, waits
        chosen = [b for b in buckets if b != CORRUPT_BUCKET][:6]
        body = Api(url, "k-1").run({"sql": "SELECT count(*) AS n FROM person", "buckets": chosen})
        expected = []
        for bucket in chosen:
            with duckdb.connect(str(tenants_dir / f"warehouse_{bucket}.duckdb"), read_only=True) as con:
                expected.append([bucket, con.execute("SELECT count(*) FROM person").fetchone()[0]])
        assert [[r[0], int(r[1])] for r in body["data"]["rows"]] == expected, body
        assert body["meta"]["databases_errored"] == 0, body["meta"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
