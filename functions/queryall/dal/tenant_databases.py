"""Where tenant databases live. One URI template selects the backend; {bucket} names the tenant.

- a folder of DuckDB files: `/dir/warehouse_{bucket}.duckdb` (optionally `file:///dir/...`);
- DuckDB files in S3: `s3://bucket/prefix/warehouse_{bucket}.duckdb`, listed with ListObjectsV2; where
  a query runs, a tenant up to the download limit is fetched with one GET and attached from a private
  folder, a larger one attached READ_ONLY through DuckDB's httpfs extension (loaded from the
  duckdb-extension-httpfs wheel, so no extension is downloaded at run time);
- MotherDuck: `md:warehouse_{bucket}?token_ssm=/param` (or `?token_secret=name`), the token read
  through Powertools Parameters; one connection attached to `md:` switches databases with USE, as
  the reference service does.

Every backend lists its tenants (with a version that changes when a database changes, when the
backend can tell), opens a DuckDB session able to reach them, makes one tenant the current database
and describes tenants' tables for the catalog. duckdb is imported only where a session is opened, so
planning with the folder or S3 backend never loads it.

Each backend also says how a query session is held to one tenant's files where the query runs
(`confinement`): DuckDB's `allowed_paths` is fixed once external access is off, so either the one
session of a batch is allowed a single alias path that is re-pointed at each tenant in turn (folder:
a hard link, or for S3 a download, so DuckDB sees the alias path itself and no other tenant's path is
ever allowed), or each tenant gets a session of its own allowed only its paths (an S3 tenant too large
to download), or the backend needs the network and only the SQL guard and the configuration lock
apply (MotherDuck).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib.util
import os
import re
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from queryall.dal.aws import client, download_client
from queryall.models.catalog import CatalogColumn, CatalogTable
from queryall.sql_literals import sql_identifier, sql_string

BUCKET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
# Sessions reading tenants' schemas at once for the catalog, for backends opened over the network:
# as for queries (QueryConcurrency), ~8 keep a core busy while each waits on its round trips.
DESCRIBE_CONCURRENCY = 8
# The name a tenant's database is attached under while its query runs.
TENANT_ALIAS = "tenant"


def database_suffix(bucket: str) -> str:
    """Hyphens in a bucket id become underscores in its database name."""
    return bucket.replace("-", "_")


@functools.cache  # looked up once per process: a session per tenant (S3) would repeat it per tenant
def extension_path(name: str) -> str:
    """The extension binary shipped in the `duckdb-extension-<name>` wheel (LOADed by path: offline,
    and nothing is written to the home directory, which is read-only on Lambda)."""
    import duckdb

    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the duckdb-extension-{name} package is not installed")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"duckdb-extension-{name} has no extension for duckdb {duckdb.__version__} ({path})")
    return str(path)


# DuckDB checks an extension's signature at every LOAD: about 150 ms for httpfs, ten times a session's
# own cost. A file whose signature a LOAD in this process has checked (same path, size and mtime) is
# loaded without the check in later sessions; nothing else can be loaded there (external access is off).
_verified_extensions: set[tuple[str, int, int]] = set()


def _extension_identity(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns


Confinement = Literal["alias", "session", "none"]


@dataclass(frozen=True)
class TenantDatabase:
    bucket: str  # as listed: the database suffix
    location: str
    # Changes whenever the database changes (file size and mtime, S3 ETag); None when unknown.
    version: str | None = None


@dataclass(frozen=True)
class TenantSchema:
    """What one tenant database holds, or why it could not be read."""

    tables: list[CatalogTable]
    error: str | None = None


class TenantDatabases(ABC):
    """A backend. `template` is the URI template, `{bucket}` appearing exactly once."""

    # How a query session is held to one tenant's files (module docstring): "alias" (one session per
    # batch, allowed only an alias path re-pointed at each tenant), "session" (a session per tenant,
    # allowed only its own paths) or "none" (the backend needs the network).
    confinement: Confinement = "session"
    # Opening a tenant is network round trips (S3, MotherDuck): a batch's tenants are worth querying
    # several at once. Folder tenants are CPU work.
    opens_over_network = True

    def __init__(self, template: str) -> None:
        if template.count("{bucket}") != 1:
            raise ValueError("TENANT_DATABASES must contain {bucket} exactly once")
        self.template = template
        self._prefix, self._suffix = template.split("{bucket}")

    def location(self, bucket: str) -> str:
        if not BUCKET_ID.match(bucket):
            raise ValueError(f"invalid bucket id {bucket!r}")
        return self._prefix + database_suffix(bucket) + self._suffix

    def database_name(self, bucket: str) -> str:
        return self.location(bucket).rsplit("/", 1)[-1].removesuffix(".duckdb")

    def _bucket_of(self, location: str) -> str | None:
        if not (location.startswith(self._prefix) and location.endswith(self._suffix)):
            return None
        bucket = location[len(self._prefix): len(location) - len(self._suffix)]
        return bucket if BUCKET_ID.match(bucket) else None

    @abstractmethod
    def list_tenants(self) -> list[TenantDatabase]:
        """Every tenant database, sorted by bucket."""

    # ----------------------------------------------------------------------------- DuckDB sessions

    def extensions(self) -> list[str]:
        """Paths of the extension binaries a session LOADs before it can open these databases."""
        return []

    def session_setup(self) -> list[str]:
        """Statements a fresh DuckDB runs after its extensions load, before it can open these databases
        (may hold secrets)."""
        return []

    def allowed_paths(self, bucket: str) -> list[str]:
        """Everything DuckDB must be able to open to read this tenant's database."""
        location = self.location(bucket)
        return [location, location + ".wal"]

    def open_session(self) -> Any:
        """A new in-memory DuckDB with the backend set up (extensions loaded, credentials given)."""
        import duckdb

        extensions = [_extension_identity(path) for path in self.extensions()]
        con = duckdb.connect(":memory:", config={
            # Nothing is fetched or loaded behind the service's back.
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": bool(extensions) and all(e in _verified_extensions for e in extensions),
        })
        try:
            for extension in extensions:
                con.execute(f"LOAD {sql_string(extension[0])}")
                _verified_extensions.add(extension)
            for statement in self.session_setup():
                con.execute(statement)
        except BaseException:
            con.close()
            raise
        return con

    def worker_identity(self) -> str:
        """What a query worker's session was made from, besides its setup statements: a worker made for
        another identity is not reused."""
        return self.template

    def alias_folder(self) -> str | None:
        """A new private folder for the "alias" confinement; None where the backend has none."""
        return None

    def point_alias(self, alias: str, bucket: str) -> None:
        raise OSError(f"{type(self).__name__} has no alias paths")

    @staticmethod
    def clear_alias(alias: str) -> None:
        for target in (alias, alias + ".wal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)

    def use(self, con: Any, bucket: str, location: str | None = None) -> str:
        """Attach the tenant's database READ_ONLY (from `location`, its alias, when given) and make it
        current; returns its catalog name."""
        con.execute(f"ATTACH {sql_string(location or self.location(bucket))} AS {TENANT_ALIAS} (READ_ONLY)")
        con.execute(f"USE {TENANT_ALIAS}")
        return TENANT_ALIAS

    def release(self, con: Any, catalog: str) -> None:
        con.execute("USE memory")
        con.execute(f"DETACH {sql_identifier(catalog)}")

    def describe(self, buckets: Iterable[str]) -> dict[str, TenantSchema]:
        """Tables and columns of each tenant (for the catalog). A database that cannot be opened is
        described by its error; the others are still read. Tenants opened over the network are read
        DESCRIBE_CONCURRENCY at a time, each thread in a session of its own: one after another, 1,000 S3
        tenants at 20 ms a request took 240 s, 10,000 more than a Lambda's 15 minutes."""
        buckets = list(buckets)
        threads = min(DESCRIBE_CONCURRENCY if self.opens_over_network else 1, len(buckets))
        if threads <= 1:
            return self._describe_in_one_session(buckets)
        described: dict[str, TenantSchema] = {}
        failures: list[BaseException] = []

        def describe_part(part: list[str]) -> None:
            try:
                described.update(self._describe_in_one_session(part))
            except BaseException as error:  # raised again in the caller's thread
                failures.append(error)

        # Daemon threads, not an executor's: an executor's threads are joined when the interpreter
        # exits, so a refresh still reading (the local stack stopping) would hold the process up.
        workers = [threading.Thread(target=describe_part, args=(buckets[i::threads],), daemon=True,
                                    name=f"describe-{i}") for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise failures[0]
        return {bucket: described[bucket] for bucket in buckets}

    def _describe_in_one_session(self, buckets: list[str]) -> dict[str, TenantSchema]:
        import duckdb

        described: dict[str, TenantSchema] = {}
        con = self.open_session()
        try:
            for bucket in buckets:
                try:
                    catalog = self.use(con, bucket)
                except duckdb.Error as error:
                    described[bucket] = TenantSchema([], f"Could not open database: {_first_line(error)}")
                    continue
                try:
                    described[bucket] = TenantSchema(read_tables(con, catalog))
                finally:
                    self.release(con, catalog)
        finally:
            con.close()
        return described


def read_tables(con: Any, catalog: str) -> list[CatalogTable]:
    """Tables and views of an attached database with their columns, in declaration order."""
    rows = con.execute(
        "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? ORDER BY schema_name, table_name, column_index",
        [catalog],
    ).fetchall()
    tables: dict[tuple[str, str], list[CatalogColumn]] = {}
    for schema, table, column, kind in rows:
        tables.setdefault((schema, table), []).append(CatalogColumn(name=column, type=kind))
    return [CatalogTable(name=t, schema_name=s, columns=cols) for (s, t), cols in tables.items()]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class FolderTenantDatabases(TenantDatabases):
    confinement: Confinement = "alias"
    opens_over_network = False

    def __init__(self, uri_template: str) -> None:
        super().__init__(uri_template.removeprefix("file://"))

    def alias_folder(self) -> str | None:
        """A new private folder on the tenant files' file system (a hard link cannot cross file
        systems): in the temporary folder when it is on the same one, else beside the tenant files.
        None when neither can be had; tenants then get a session each."""
        folder = os.path.dirname(self._prefix) or "."
        try:
            device = os.stat(folder).st_dev
        except OSError:
            return None
        for parent in (tempfile.gettempdir(), folder):
            with contextlib.suppress(OSError):
                if os.stat(parent).st_dev == device:
                    return tempfile.mkdtemp(prefix=".queryall-alias-", dir=parent)
        return None

    def point_alias(self, alias: str, bucket: str) -> None:
        """Hard-link the tenant's database, and its WAL when it has one, at `alias` (and `alias`.wal).
        Raises OSError when a link cannot be made (another file system, protected hard links)."""
        location = self.location(bucket)
        self.clear_alias(alias)
        os.link(location, alias)
        if os.path.exists(location + ".wal"):
            os.link(location + ".wal", alias + ".wal")

    def list_tenants(self) -> list[TenantDatabase]:
        pattern = glob.escape(self._prefix) + "*" + glob.escape(self._suffix)
        found = []
        for path in glob.glob(pattern):
            bucket = self._bucket_of(path)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # removed meanwhile
            if bucket is not None and os.path.isfile(path):
                found.append(TenantDatabase(bucket, path, f"{stat.st_size}-{stat.st_mtime_ns}"))
        return sorted(found, key=lambda t: t.bucket)


class S3TenantDatabases(TenantDatabases):
    """Tenant databases in S3.

    A tenant of at most `download_max_mb` is read with one GET (and one for its WAL, which is almost
    always absent) into the worker's private alias folder and attached from there, as a folder tenant
    is ("alias" confinement: the session may open that one path and no URL at all). DuckDB attaching
    the object over S3 made 11 requests of it (a HEAD, the whole object, then 8 ranged reads of blocks
    it had just fetched, and the WAL's HEAD) in a DuckDB instance of its own: ~220 ms of round trips at
    20 ms each, and ~8 ms of CPU for the instance, where the download is 2 round trips
    (docs/performance.md). A larger tenant (its GET's Content-Length says so; the body is not read)
    gets a session of its own, allowed only its own s3:// paths, and DuckDB reads what the query needs.
    `download_max_mb` 0 never downloads."""

    confinement: Confinement = "alias"

    def __init__(self, uri_template: str, download_max_mb: int = 64) -> None:
        super().__init__(uri_template)
        self.download_max_bytes = max(0, int(download_max_mb)) * 1024 * 1024
        parts = urlsplit(uri_template)
        self.s3_bucket = parts.netloc
        key_template = uri_template.removeprefix(f"s3://{self.s3_bucket}/")
        if not self.s3_bucket or key_template == uri_template or "/" in key_template.split("{bucket}")[1]:
            raise ValueError("TENANT_DATABASES for S3 must look like s3://bucket/prefix/warehouse_{bucket}.duckdb")
        self._key_prefix = key_template.split("{bucket}")[0]
        self._setup: list[str] | None = None

    def list_tenants(self) -> list[TenantDatabase]:
        found = []
        paginator = client("s3").get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.s3_bucket, Prefix=self._key_prefix):
            for item in page.get("Contents", []):
                location = f"s3://{self.s3_bucket}/{item['Key']}"
                bucket = self._bucket_of(location)
                if bucket is not None:
                    found.append(TenantDatabase(bucket, location, item.get("ETag", "").strip('"') or None))
        return sorted(found, key=lambda t: t.bucket)

    def extensions(self) -> list[str]:
        return [extension_path("httpfs")]

    def key(self, bucket: str) -> str:
        """The tenant's object key in `s3_bucket`."""
        return self.location(bucket).removeprefix(f"s3://{self.s3_bucket}/")

    def worker_identity(self) -> str:
        return f"{self.template} (downloads up to {self.download_max_bytes} bytes)"

    def alias_folder(self) -> str | None:
        """A new private folder for downloaded tenants; None (a session per tenant) when none are."""
        return tempfile.mkdtemp(prefix=".queryall-alias-") if self.download_max_bytes else None

    def point_alias(self, alias: str, bucket: str) -> None:
        """Download the tenant's object, and its WAL when it has one, to `alias` (and `alias`.wal). Raises
        OSError when it is larger than `download_max_bytes` or cannot be read (missing, denied, the
        network): the tenant is then attached over S3 in a session of its own, whose error, if any, is
        DuckDB's as before."""
        self.clear_alias(alias)
        key = self.key(bucket)
        try:
            self._download(key, alias, required=True)
            self._download(key + ".wal", alias + ".wal", required=False)
        except OSError:
            self.clear_alias(alias)  # never half a tenant: a database without its WAL would miss rows
            raise

    def _download(self, key: str, path: str, required: bool) -> bool:
        """Whether the object was written to `path`: False when an optional one is missing. Raises
        OSError when it is larger than `download_max_bytes` or cannot be read."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = download_client().get_object(Bucket=self.s3_bucket, Key=key)
        except ClientError as error:
            if not required and error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return False
            raise OSError(str(error)) from error
        except BotoCoreError as error:
            raise OSError(str(error)) from error
        body = answer["Body"]
        try:
            if answer.get("ContentLength", 0) > self.download_max_bytes:
                raise OSError(f"s3://{self.s3_bucket}/{key} is larger than {self.download_max_bytes} bytes")
            with open(path, "wb") as file:
                shutil.copyfileobj(body, file, 1024 * 1024)
            return True
        except (BotoCoreError, ClientError) as error:
            self.clear_alias(path)
            raise OSError(str(error)) from error
        finally:
            body.close()

    def session_setup(self) -> list[str]:
        # Made once per backend object (one batch): with a session per tenant, resolving the
        # credentials again for each would cost more than the session.
        if self._setup is None:
            # ATTACH opens the object twice (a whole-file read, then DuckDB's block reads), each with a
            # HEAD: the metadata cache saves the second, 12 -> 11 S3 requests a tenant (bench/s3_requests.py).
            self._setup = [s3_secret_sql(), "SET enable_http_metadata_cache = true"]
        return self._setup


def s3_secret_sql() -> str:
    """A DuckDB S3 secret from the function's own credentials and region; against a local endpoint
    (AWS_ENDPOINT_URL, the local stack's moto) it uses path-style URLs and the endpoint's scheme."""
    import boto3

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials to read tenant databases from S3")
    frozen = credentials.get_frozen_credentials()
    options = {
        "KEY_ID": frozen.access_key,
        "SECRET": frozen.secret_key,
        "REGION": session.region_name or "us-east-1",
    }
    if frozen.token:
        options["SESSION_TOKEN"] = frozen.token
    text = ", ".join(f"{key} {sql_string(value)}" for key, value in options.items())
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        text += f", ENDPOINT {sql_string(parts.netloc)}, URL_STYLE 'path', USE_SSL {parts.scheme == 'https'!s}"
    return f"CREATE SECRET tenant_databases (TYPE s3, {text})"


class MotherDuckTenantDatabases(TenantDatabases):
    """`md:warehouse_{bucket}?token_ssm=/name` or `?token_secret=name`.

    `connect` is the seam tests use in place of a real MotherDuck connection."""

    confinement: Confinement = "none"

    def __init__(self, uri_template: str, connect: Callable[[], Any] | None = None) -> None:
        parts = urlsplit(uri_template)
        super().__init__(uri_template.split("?", 1)[0])
        if parts.scheme != "md" or not parts.path or "/" in parts.path:
            raise ValueError("TENANT_DATABASES for MotherDuck must look like md:warehouse_{bucket}?token_ssm=/name")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"token_ssm", "token_secret"}
        if unknown or len(query) != 1:
            raise ValueError(
                "TENANT_DATABASES for MotherDuck needs exactly one of ?token_ssm=/name or ?token_secret=name"
            )
        (store, self.token_name), = query.items()
        # Where the token is kept: an SSM parameter or a Secrets Manager secret.
        self.token_in_ssm = store == "token_ssm"
        self._connect = connect

    def database_name(self, bucket: str) -> str:
        return self.location(bucket).removeprefix("md:")

    def token(self) -> str:
        from aws_lambda_powertools.utilities import parameters

        if self.token_in_ssm:
            return str(parameters.get_parameter(self.token_name, decrypt=True, max_age=300))
        return str(parameters.get_secret(self.token_name, max_age=300))

    def extensions(self) -> list[str]:
        return [extension_path("motherduck")]

    def session_setup(self) -> list[str]:
        return [
            f"SET motherduck_token = {sql_string(self.token())}",
            "ATTACH 'md:'",  # every database of the account; a tenant is then one USE away
        ]

    def allowed_paths(self, bucket: str) -> list[str]:
        return []

    def open_session(self) -> Any:
        if self._connect is None:
            return super().open_session()
        con = self._connect()
        for path in self.extensions():
            con.execute(f"LOAD {sql_string(path)}")
        for statement in self.session_setup():
            con.execute(statement)
        return con

    def use(self, con: Any, bucket: str, location: str | None = None) -> str:
        name = self.database_name(bucket)
        con.execute(f"USE {sql_identifier(name)}")
        return name

    def release(self, con: Any, catalog: str) -> None:
        con.execute("USE memory")

    def list_tenants(self) -> list[TenantDatabase]:
        con = self.open_session()
        try:
            names = [row[0] for row in con.execute(
                "SELECT database_name FROM duckdb_databases() WHERE NOT internal ORDER BY database_name"
            ).fetchall()]
        finally:
            con.close()
        found = (TenantDatabase(bucket, "md:" + name) for name in names
                 if (bucket := self._bucket_of("md:" + name)) is not None)
        return sorted(found, key=lambda t: t.bucket)


def tenant_databases(uri_template: str, download_max_mb: int = 64) -> TenantDatabases:
    """The backend for a URI template: `s3://…` (tenants up to `download_max_mb` read with one GET),
    `md:…`, else a folder path (optionally `file://`)."""
    if uri_template.startswith("s3://"):
        return S3TenantDatabases(uri_template, download_max_mb)
    if uri_template.startswith("md:"):
        return MotherDuckTenantDatabases(uri_template)
    return FolderTenantDatabases(uri_template)
