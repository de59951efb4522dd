"""Peak memory of a batch running K memory-heavy tenants at once, against the budget K x per-tenant limit.

    python bench/concurrent_memory.py [--concurrency 4] [--memory-limit-mb 128]

Seeds K folder tenants, runs one batch of them with `run_batch(..., concurrency=K)` and a query that
fills DuckDB's memory up to its limit (a DISTINCT over tens of millions of values), and samples every
20 ms the resident memory of the batch's process and its query workers. Prints the peak, the workers'
peak alone, their size when idle, and the budget.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra" / "local")]

from queryall.dal.tenant_databases import FolderTenantDatabases  # noqa: E402
from queryall.logic import query_workers  # noqa: E402
from queryall.logic.query_workers import run_batch  # noqa: E402
from queryall_local.seed import seed_tenants  # noqa: E402

HEAVY = "SELECT count(DISTINCT r) AS n FROM range({rows}) t(r)"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children_rss(parent: int) -> list[int]:
    sizes = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(parent):
                sizes.append(int((stat.parent / "statm").read_text().split()[1]) * PAGE)
        except (OSError, IndexError, ValueError):
            continue
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--memory-limit-mb", type=int, default=128)
    parser.add_argument("--rows", type=int, default=30_000_000)
    args = parser.parse_args()
    mb = 1024 * 1024
    with tempfile.TemporaryDirectory() as folder:
        buckets = seed_tenants(Path(folder), args.concurrency)
        tenants = FolderTenantDatabases(str(Path(folder) / "warehouse_{bucket}.duckdb"))
        query_workers.check_read_only_select = lambda text: text  # the heavy query's own text, as is
        run_batch(buckets, tenants, "SELECT 1", 10, None, 60, memory_limit_mb=args.memory_limit_mb, threads=1,
                  concurrency=args.concurrency)  # workers started and idle
        idle = sum(_children_rss(os.getpid()))
        peak, peak_workers, done = 0, 0, threading.Event()

        def sample() -> None:
            nonlocal peak, peak_workers
            own = int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
            while not done.is_set():
                workers = sum(_children_rss(os.getpid()))
                peak_workers = max(peak_workers, workers)
                peak = max(peak, workers + own)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        outcomes, _ = run_batch(buckets, tenants, HEAVY.format(rows=args.rows), 10, None, 60,
                                memory_limit_mb=args.memory_limit_mb, threads=1, concurrency=args.concurrency)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    budget = args.concurrency * args.memory_limit_mb
    print(f"K={args.concurrency} x {args.memory_limit_mb} MB = {budget} MB budget; batch {seconds:.2f} s; "
          f"outcomes {[(o.status, (o.message or '')[:60]) for o in outcomes]}")
    print(f"workers idle {idle / mb:.0f} MB, workers' peak {peak_workers / mb:.0f} MB "
          f"(growth {(peak_workers - idle) / mb:.0f} MB), with the batch's process {peak / mb:.0f} MB; "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
