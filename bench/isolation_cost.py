"""Per-tenant cost of tenant isolation, next to the ATTACH/DETACH floor measured in the same run.

Every mechanism runs the same wrapped query (``SELECT * FROM (SELECT count(*) ...) LIMIT 1000``) on the
same seeded tenant files and reports the median per-tenant wall time over several rounds:

- floor: one in-memory DuckDB, ``ATTACH ... (READ_ONLY)`` / ``USE`` / query / ``DETACH`` per tenant,
  no isolation at all (the design brief's floor);
- folder backend ("alias"), in process: the batch's one sandbox of ``queryall.logic.tenant_query``
  (allowed_paths = one alias path, external access off, configuration locked, limits set); each tenant
  is hard-linked at the alias, attached, queried, detached, and the session checked for leftovers;
- folder backend, as QueryBatch runs it: the same inside a forked worker process the batch can kill on
  a timeout or memory overrun (``run_batch``: guard check, fork, results back as Arrow over a pipe);
- S3 backend ("session"), as QueryBatch runs it, without the network: a sandboxed session per tenant
  with the httpfs extension loaded (its signature checked on the first load only), allowed only the
  tenant's own paths;
- alternative: a fresh in-memory DuckDB per tenant, external access disabled after its ATTACH;
- alternative: one DuckDB per batch with every tenant attached, then USE per tenant (cheap, but every
  tenant of the batch is reachable by catalog name while another's query runs).

    python bench/isolation_cost.py [--tenants 100] [--batch 25] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra" / "local")]

import duckdb  # noqa: E402

from queryall.dal.tenant_databases import FolderTenantDatabases, extension_path  # noqa: E402
from queryall.logic.query_workers import run_batch  # noqa: E402
from queryall.logic.sql_guard import wrap_with_limit  # noqa: E402
from queryall.logic.tenant_query import TenantQueryRunner  # noqa: E402
from queryall.sql_literals import sql_string  # noqa: E402
from queryall_local.seed import seed_tenants  # noqa: E402

SQL = "SELECT count(*) AS n, max(email) AS last FROM person"
WRAPPED = wrap_with_limit(SQL, 1000)
LIMITS = {"memory_limit_mb": 768, "threads": 2}


def floor(paths: list[str], batch: int) -> None:
    con = duckdb.connect(":memory:")
    for path in paths:
        con.execute(f"ATTACH {sql_string(path)} AS tenant (READ_ONLY)")
        con.execute("USE tenant")
        con.execute(WRAPPED).arrow()
        con.execute("USE memory")
        con.execute("DETACH tenant")
    con.close()


class HttpfsSessionPerTenant(FolderTenantDatabases):
    """What the S3 backend does where the query runs, less the network: a session per tenant, httpfs loaded."""

    confinement = "session"

    def extensions(self) -> list[str]:
        return [extension_path("httpfs")]


def sandbox_in_process(tenants: FolderTenantDatabases, buckets: list[str], batch: int) -> None:
    for start in range(0, len(buckets), batch):
        chunk = buckets[start: start + batch]
        alias_folder = tenants.alias_folder()
        assert alias_folder is not None
        runner = TenantQueryRunner(tenants, 30, alias_folder=alias_folder, **LIMITS)
        for bucket in chunk:
            outcome, _ = runner.run(bucket, SQL, 1000, None)
            assert outcome.status == "ok", outcome
        runner.close()
        os.rmdir(alias_folder)


def sandbox_in_worker(tenants: FolderTenantDatabases, buckets: list[str], batch: int) -> None:
    for start in range(0, len(buckets), batch):
        outcomes, _ = run_batch(buckets[start: start + batch], tenants, SQL, 1000, None, 30, **LIMITS)
        assert all(o.status == "ok" for o in outcomes), outcomes


def fresh_instance_per_tenant(paths: list[str], batch: int) -> None:
    for path in paths:
        con = duckdb.connect(":memory:")
        con.execute(f"ATTACH {sql_string(path)} AS tenant (READ_ONLY)")
        con.execute("USE tenant")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.execute(WRAPPED).arrow()
        con.close()


def attach_all_then_use(paths: list[str], batch: int) -> None:
    for start in range(0, len(paths), batch):
        con = duckdb.connect(":memory:")
        chunk = paths[start: start + batch]
        for index, path in enumerate(chunk):
            con.execute(f"ATTACH {sql_string(path)} AS t{index} (READ_ONLY)")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        for index in range(len(chunk)):
            con.execute(f"USE t{index}")
            con.execute(WRAPPED).arrow()
        con.close()


def per_tenant_ms(run: Callable[[], None], tenants: int, rounds: int) -> float:
    run()  # warm: page cache, imports
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000 / tenants)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="isolation-cost-") as folder:
        buckets = seed_tenants(Path(folder), args.tenants)
        tenants = FolderTenantDatabases(str(Path(folder) / "warehouse_{bucket}.duckdb"))
        paths = [tenants.location(b) for b in buckets]
        measured = {
            "floor: ATTACH/DETACH, no isolation": lambda: floor(paths, args.batch),
            "folder (alias sandbox), in process": lambda: sandbox_in_process(tenants, buckets, args.batch),
            "folder (alias sandbox) in a worker process (QueryBatch)":
                lambda: sandbox_in_worker(tenants, buckets, args.batch),
            "S3 (session per tenant, httpfs) in a worker, no network":
                lambda: sandbox_in_worker(HttpfsSessionPerTenant(tenants.template), buckets, args.batch),
            "alternative: fresh DuckDB per tenant": lambda: fresh_instance_per_tenant(paths, args.batch),
            "alternative: attach all, USE per tenant (leaky)": lambda: attach_all_then_use(paths, args.batch),
        }
        results = {name: per_tenant_ms(run, len(buckets), args.rounds) for name, run in measured.items()}
    base = results["floor: ATTACH/DETACH, no isolation"]
    print(f"{len(buckets)} tenants, batches of {args.batch}, median of {args.rounds} rounds (ms per tenant)")
    for name, ms in results.items():
        print(f"  {name:<58} {ms:7.2f} ms  {ms / base:5.2f}x floor")


if __name__ == "__main__":
    main()
