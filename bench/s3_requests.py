"""S3 requests DuckDB makes per tenant (ATTACH READ_ONLY, the query, DETACH), counted where moto serves
them, with DuckDB's HTTP settings as they are and with each candidate setting changed.

    python bench/s3_requests.py [--tenants 5] [--sql 'SELECT count(*) FROM person']

One tenant at a time in a fresh DuckDB instance set up as the sandbox's (httpfs from its wheel, the S3
secret for the local endpoint); the count is per tenant, the session's own set-up counted apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra" / "local")]

from queryall.dal.tenant_databases import S3TenantDatabases  # noqa: E402
from queryall_local.moto_services import MotoServices  # noqa: E402
from queryall_local.s3_tenants import s3_tenant_databases_value, upload_tenants  # noqa: E402
from queryall_local.seed import seed_tenants  # noqa: E402

QUERIES = {
    "count": "SELECT count(*) AS people FROM person",
    "group-by": ("SELECT kind, properties.source AS source, id % 2 AS parity, count(*) AS events, "
                 "sum(properties.duration_ms) AS total_ms FROM event GROUP BY ALL ORDER BY ALL"),
}
# DuckDB settings that could cut the requests (each tried alone, then the ones that helped together).
CANDIDATES = {
    "before (DuckDB's defaults)": ["SET enable_http_metadata_cache = false"],
    "after (the backend's setup: metadata cache)": [],
    "+ force_download": ["SET force_download = true"],
    "no external file cache": ["SET enable_external_file_cache = false"],
    "http_keep_alive off": ["SET http_keep_alive = false"],
    "prefetch all parquet (no-op for .duckdb)": ["SET prefetch_all_parquet_files = true"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="S3 latency for the timing column")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, MotoServices() as moto:
        buckets = seed_tenants(Path(folder), args.tenants)
        os.environ.update({"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
        upload_tenants(moto, Path(folder))
        backend = S3TenantDatabases(s3_tenant_databases_value())
        print(f"{args.tenants} tenants; S3 requests per tenant (median), and seconds per tenant at "
              f"{args.latency_ms:g} ms per request", flush=True)
        for name, settings in CANDIDATES.items():
            for query, sql in QUERIES.items():
                setup, per_tenant, seconds = [], [], []
                for bucket in buckets:
                    moto.s3_latency_ms = 0
                    before = moto.request_counts["s3"]
                    con = backend.open_session()
                    try:
                        for statement in settings:
                            con.execute(statement)
                        setup.append(moto.request_counts["s3"] - before)
                        before = moto.request_counts["s3"]
                        moto.s3_latency_ms = args.latency_ms
                        started = time.perf_counter()
                        catalog = backend.use(con, bucket)
                        con.execute(f"SELECT * FROM ({sql}) LIMIT 1000").fetchall()
                        backend.release(con, catalog)
                        seconds.append(time.perf_counter() - started)
                        per_tenant.append(moto.request_counts["s3"] - before)
                    finally:
                        con.close()
                print(f"  {name:42s} {query:9s} set-up {statistics.median(setup):3.0f}  per tenant "
                      f"{statistics.median(per_tenant):4.0f} (min {min(per_tenant)}, max {max(per_tenant)})  "
                      f"{statistics.median(seconds) * 1000:6.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
