"""``queryall local serve --tenants-backend s3``: the tenant folder's databases served from the local S3.

The local stack uploads every ``warehouse_<bucket>.duckdb`` of its tenant folder into a bucket of its
moto server at start, and gives the functions the ``s3://`` backend for it, so the S3 backend (httpfs,
a sandboxed session per tenant) can be tried, and measured with ``--s3-latency-ms``, with the same
command as the folder backend.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .moto_services import MotoServices

TENANTS_S3_BUCKET = "queryall-local-tenants"
TENANT_DATABASE_PATTERN = "warehouse_{bucket}.duckdb"


def s3_tenant_databases_value(bucket: str = TENANTS_S3_BUCKET) -> str:
    """The TenantDatabases parameter for tenants uploaded by :func:`upload_tenants`."""
    return f"s3://{bucket}/{TENANT_DATABASE_PATTERN}"


def upload_tenants(services: MotoServices, tenants_dir: Path, bucket: str = TENANTS_S3_BUCKET) -> int:
    """Upload the folder's tenant databases to ``bucket`` (created); returns how many."""
    s3 = services.client("s3")
    s3.create_bucket(Bucket=bucket)
    files = sorted(p for p in Path(tenants_dir).glob("warehouse_*.duckdb") if p.is_file())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda path: s3.upload_file(str(path), bucket, path.name), files))
    return len(files)
