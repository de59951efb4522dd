"""Where tenant databases live. One URI template for every backend; {bucket} names the tenant.

Today: a folder of DuckDB files (`/dir/warehouse_{bucket}.duckdb`, optionally `file://`).
"""

from __future__ import annotations

import glob
import os
import re

_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def database_suffix(bucket: str) -> str:
    """Hyphens in a bucket id become underscores in its database name."""
    return bucket.replace("-", "_")


class FolderTenantDatabases:
    def __init__(self, uri_template: str) -> None:
        template = uri_template.removeprefix("file://")
        if template.count("{bucket}") != 1:
            raise ValueError("TENANT_DATABASES must contain {bucket} exactly once")
        self.template = template
        self._prefix, self._suffix = template.split("{bucket}")

    def location(self, bucket: str) -> str:
        if not _BUCKET.match(bucket):
            raise ValueError(f"invalid bucket id {bucket!r}")
        return self._prefix + database_suffix(bucket) + self._suffix

    def database_name(self, bucket: str) -> str:
        return os.path.basename(self.location(bucket)).removesuffix(".duckdb")

    def exists(self, bucket: str) -> bool:
        return os.path.isfile(self.location(bucket))

    def list_buckets(self) -> list[str]:
        pattern = glob.escape(self._prefix) + "*" + glob.escape(self._suffix)
        found = []
        for path in glob.glob(pattern):
            bucket = path[len(self._prefix): len(path) - len(self._suffix)]
            if _BUCKET.match(bucket) and os.path.isfile(path):
                found.append(bucket)
        return sorted(found)


def tenant_databases(uri_template: str) -> FolderTenantDatabases:
    """The backend for a URI template (more schemes join here: s3://, md:)."""
    if uri_template.startswith(("s3://", "md:")):
        raise ValueError(f"tenant database backend not available yet: {uri_template.split(':')[0]}")
    return FolderTenantDatabases(uri_template)
