"""Fan-out benchmark: the local pipeline over HTTP against the direct-DuckDB floor.

For each tenant count N (default 177 and 1,000) this seeds N tenants (cached under
``.queryall/bench-tenants-N``), then measures in one run:

* the floor: one process, one DuckDB instance, ``ATTACH … (READ_ONLY)`` / ``DETACH`` per tenant,
  the same SQL wrapped as the pipeline wraps it (``SELECT * FROM (<sql>) LIMIT <limit>``); the
  ratio is against it. Beside it, for reading the pipeline's seconds: the same work split over every
  core (one process per core), the best the machine can do with no orchestration at all;
* the pipeline: ``queryall local serve`` in a subprocess (moto's Step Functions running the real
  state machine, every Lambda in-process), submit -> completed over HTTP (polling every 50 ms, or
  long-polling GET /query-all/wait with ``--wait``), median of several runs after a warm-up job;

for a count query (one row per tenant) and a group-by (about 50 rows per tenant). It prints both
times and their ratio, and checks that the combined rows equal the floor's rows.

    python bench/fanout.py                     # 177 and 1,000 tenants
    python bench/fanout.py --tenants 177 --repeat 9 --profile /tmp/prof   # py-spy the server
    python bench/fanout.py --parameter DistributedMapThreshold=100        # the distributed Map path
    python bench/fanout.py --tenants-dir DIR --sql 'n=SELECT count(*) FROM t'  # tenants you bring
    python bench/fanout.py --tenants 1000 --queries count --repeat 20 --contention 4  # a busy machine

With ``--contention N``, N processes burn CPU while the pipeline's jobs run (not the floor), and each
job's tenant counts and errors are printed: no tenant may error because the machine is busy.

With ``--backend s3 --s3-latency-ms 20`` the tenants are served from the local stack's S3 (``queryall
local serve --tenants-backend s3``, N ms before every S3 request) and one run prints: the pipeline's
time; the S3 floor (K x workers threads, each tenant in a fresh DuckDB instance that loads httpfs,
ATTACHes it over the same latency-injected S3 and runs the query); the download floor (as many
threads, each tenant downloaded with one GET and attached from a local file, one DuckDB instance a
thread: the pipeline's own way of reading a small S3 tenant, with no orchestration); the same
pipeline with K = 1 (one tenant at a time per batch), K = 1 attaching over S3 (TenantDownloadMaxMB=0:
the pipeline before tenants were downloaded and run K at a time) and at 0 ms; the ratios and whether
the targets are met (<= 1.5x the S3 floor, >= 5x faster than one tenant at a time over S3).
``--floor-only`` skips the K = 1 and 0 ms runs.

With ``--tenants-dir`` the tenants are the ``warehouse_<bucket>.duckdb`` files in DIR (not seeded, and
not modified), and ``--sql NAME=SQL`` (repeatable) names the queries to run on them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra" / "local")]

import duckdb  # noqa: E402

from queryall_local.seed import bucket_names, seed_tenants  # noqa: E402

API_KEY = "bench-key"
LIMIT = 1000
QUERIES = {
    "count": "SELECT count(*) AS people FROM person",
    # 5 kinds x 5 sources x 2 parities: 50 rows for every tenant with enough events.
    "group-by": (
        "SELECT kind, properties.source AS source, id % 2 AS parity, count(*) AS events, "
        "sum(properties.duration_ms) AS total_ms FROM event GROUP BY ALL ORDER BY ALL"
    ),
}
SEED_VERSION = "1"


# ------------------------------------------------------------------------------------------ tenants


def tenants_dir(count: int, root: Path) -> Path:
    """A folder of ``count`` seeded tenants, reused when a previous run left it complete."""
    directory = root / f"bench-tenants-{count}"
    marker = directory / ".seeded"
    expected = f"{SEED_VERSION}:{count}:{duckdb.__version__}"
    if marker.is_file() and marker.read_text() == expected:
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    started = time.perf_counter()
    seed_tenants(directory, count)
    marker.write_text(expected)
    print(f"  seeded {count} tenants in {directory} ({time.perf_counter() - started:.1f} s)", flush=True)
    return directory


# ------------------------------------------------------------------------------------------ floor


def floor(directory: Path, buckets: list[str], sql: str) -> tuple[float, list[list[Any]]]:
    """Seconds to query every tenant from one DuckDB instance, and the rows with the bucket first."""
    wrapped = f"SELECT * FROM ({sql}) LIMIT {LIMIT}"
    rows: list[list[Any]] = []
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for bucket in buckets:
        path = str(directory / f"warehouse_{bucket}.duckdb").replace("'", "''")
        con.execute(f"ATTACH '{path}' AS tenant (READ_ONLY)")
        con.execute("USE tenant")
        rows.extend([bucket, *row] for row in con.execute(wrapped).fetchall())
        con.execute("USE memory")
        con.execute("DETACH tenant")
    con.close()
    return time.perf_counter() - started, rows


def _floor_part(args: tuple[Path, list[str], str]) -> float:
    return floor(*args)[0]


def floor_on_cores(directory: Path, buckets: list[str], sql: str, cores: int) -> float:
    """Seconds for the floor's work split over `cores` processes (every `cores`-th tenant each): what
    the machine can do at best with all its cores, for reading the pipeline's time (the ratio is
    against the one-process floor)."""
    context = multiprocessing.get_context("fork")
    with context.Pool(cores) as pool:
        pool.map(_floor_part, [(directory, buckets[:1], sql)] * cores)  # warm: each process's DuckDB
        started = time.perf_counter()
        pool.map(_floor_part, [(directory, buckets[index::cores], sql) for index in range(cores)])
        return time.perf_counter() - started


# ------------------------------------------------------------------------------------------ contention


def _burn(stop: Any) -> None:
    while not stop.is_set():
        sum(range(10_000))


class CpuBurners:
    """``count`` processes spinning on the CPU while the block runs: a machine busy with other work."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("fork")
        self.stop = context.Event()
        self.processes = [context.Process(target=_burn, args=(self.stop,), daemon=True) for _ in range(count)]

    def __enter__(self) -> CpuBurners:
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()


# ------------------------------------------------------------------------------------------ pipeline


class LocalServer:
    """``queryall local serve`` on a free port in a subprocess (moto is process-global)."""

    def __init__(self, directory: Path, parameters: dict[str, str], extra: list[str]) -> None:
        self.directory = directory
        self.parameters = parameters
        self.extra = extra
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.moto_url = ""

    def __enter__(self) -> LocalServer:
        command = [sys.executable, "-m", "queryall_local", "local", "serve", "--port", "0", *self.extra,
                   "--tenants-dir", str(self.directory), "--api-key", API_KEY]
        for name, value in self.parameters.items():
            command += ["--parameter", f"{name}={value}"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[:2])}
        # The handlers log a line per tenant: to a file, so a full pipe never blocks the server.
        self.log = tempfile.NamedTemporaryFile("w+", prefix="queryall-bench-", suffix=".log")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.process.poll() is None:
            log = Path(self.log.name).read_text(errors="replace")
            match = re.search(r"ready at (http://\S+).*moto (http://\S+)", log)
            if match:
                self.url, self.moto_url = match.group(1), match.group(2)
                self._wait_for_catalog(deadline)
                return self
            time.sleep(0.05)
        self.process.kill()
        raise RuntimeError(f"local stack did not start:\n{Path(self.log.name).read_text(errors='replace')[-2000:]}")

    def _wait_for_catalog(self, deadline: float) -> None:
        """The stack refreshes the catalog once at start (its schedule's first run), reading every
        tenant: over S3 at 20 ms that is tens of seconds of requests, which would share the measured
        jobs' CPU and S3. A deployed stack refreshes every 15 minutes, not during each job."""
        assert self.process is not None
        while time.monotonic() < deadline and self.process.poll() is None:
            if "catalog refreshed" in Path(self.log.name).read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError("the local stack's first catalog refresh did not finish")

    def own_cpu_seconds(self) -> float:
        """CPU time of the server process alone (moto, the gateway, the handlers), not its workers."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        """CPU time of the server and its query workers, all threads: the server's own, its finished
        children's, and that of the workers still running (they are kept between batches)."""
        assert self.process is not None
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile: counted in its parent's children's time
            if stat.parent.name == str(self.process.pid):
                ticks += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
            elif fields[1] == str(self.process.pid):
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


def _request(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"x-api-key": API_KEY, "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read(), parse_float=Decimal)


def run_job(url: str, sql: str, poll_interval: float, wait: bool, limit_s: float = 120) -> tuple[float, str, dict]:
    """Submit, then poll (or long-poll GET /query-all/wait) until the job is no longer processing:
    (seconds, job id, the job's poll body)."""
    started = time.perf_counter()
    job_id = _request(f"{url}/query-all", "POST", {"sql": sql, "limit": LIMIT})["data"]["job_id"]
    while time.perf_counter() - started < limit_s:
        if wait:
            waited = _request(f"{url}/query-all/wait?job_ids={job_id}&timeout_seconds=20")["data"]
            if waited["jobs"]:
                return time.perf_counter() - started, job_id, waited["jobs"][0]
            continue
        body = _request(f"{url}/query-all/jobs/{job_id}")
        if body["data"].get("status") != "processing":
            return time.perf_counter() - started, job_id, body
        time.sleep(poll_interval)
    raise RuntimeError(f"job {job_id} still processing after {limit_s:g} s")


def all_rows(url: str, job_id: str, body: dict) -> list[list[Any]]:
    """Every combined row: the job's first rows, then the result's pages while there is a next cursor."""
    rows = list(body["data"]["rows"])
    cursor = body.get("meta", {}).get("next_cursor")
    while cursor:
        page = _request(f"{url}/query-all/jobs/{job_id}/results?cursor={urllib.parse.quote(cursor)}"
                        "&page_size=10000")
        rows.extend(page["data"]["rows"])
        cursor = page["meta"].get("next_cursor")
    return rows


def job_errors(body: dict) -> dict:
    """A finished job's tenant counts and its errors by tenant (kept for every job of a run)."""
    meta = body["meta"]
    return {"queried": meta.get("databases_queried"), "errored": meta.get("databases_errored", 0),
            "errors": meta.get("errors", {})}


def _normalise(rows: list[list[Any]]) -> list[list[Any]]:
    return [[Decimal(v) if isinstance(v, int | float | Decimal) and not isinstance(v, bool) else v for v in row]
            for row in rows]


def check(pipeline: dict, rows: list[list[Any]], expected: list[list[Any]]) -> str:
    """'ok' when the combined rows equal the floor's; a prefix is fine only if the job says truncated."""
    meta = pipeline["meta"]
    if meta["total_rows"] != len(expected):
        return f"MISMATCH total_rows {meta['total_rows']} != {len(expected)}"
    if meta["databases_errored"]:
        return f"MISMATCH {meta['databases_errored']} databases errored: {list(meta['errors'].items())[:2]}"
    got, want = _normalise(rows), _normalise(expected)
    if len(got) < len(want):
        if not meta.get("truncated"):
            return f"MISMATCH {len(got)} rows returned of {len(want)}, not truncated"
        if got != want[: len(got)]:
            return "MISMATCH rows differ"
        return f"ok (prefix of {len(got)} rows, truncated; total_rows matches)"
    return "ok" if got == want else "MISMATCH rows differ"


# ------------------------------------------------------------------------------------------ main


# The targets on this 2-core machine: (at most this many tenants, seconds, ratio to the floor).
TARGETS = ((177, 1.0, 4.0), (1000, 3.0, None))


def verdict_against_target(count: int, seconds: float, ratio: float) -> str:
    for tenants, limit_s, limit_ratio in TARGETS:
        if count <= tenants:
            met = seconds <= limit_s and (limit_ratio is None or ratio <= limit_ratio)
            wanted = f"<= {limit_s:g} s" + (f", <= {limit_ratio:g}x" if limit_ratio else "")
            return f"target ({wanted}) {'met' if met else 'MISSED'}"
    return "no target"


def brought_tenants(directory: Path) -> list[str]:
    """The buckets of the ``warehouse_<bucket>.duckdb`` files in a folder of tenants someone brought."""
    buckets = sorted(p.name.removeprefix("warehouse_").removesuffix(".duckdb")
                     for p in directory.glob("warehouse_*.duckdb") if p.is_file())
    if not buckets:
        raise SystemExit(f"no warehouse_<bucket>.duckdb files in {directory}")
    return buckets


def bench(count: int, args: argparse.Namespace) -> list[dict]:
    if args.tenants_dir is not None:
        directory, buckets = args.tenants_dir, brought_tenants(args.tenants_dir)
        count = len(buckets)
        print(f"\n== {count} tenants in {directory}", flush=True)
    else:
        print(f"\n== {count} tenants", flush=True)
        directory = tenants_dir(count, args.root)
        buckets = sorted(bucket_names(count))
    results = []
    parameters = dict(p.split("=", 1) for p in args.parameter)
    extra = ["--lambda-concurrency", str(args.lambda_concurrency)] if args.lambda_concurrency else []
    with LocalServer(directory, parameters, extra) as server:
        profiler = None
        for name, sql in (args.sql or QUERIES).items():
            if args.queries and name not in args.queries:
                continue
            floors, expected, parallel = [], [], []
            for _ in range(args.repeat):
                seconds, expected = floor(directory, buckets, sql)
                floors.append(seconds)
                parallel.append(floor_on_cores(directory, buckets, sql, os.cpu_count() or 1))
            run_job(server.url, sql, args.poll_interval, args.wait)  # warm: imports, clients, DuckDB
            if args.profile and profiler is None:
                profiler = _start_profiler(server, args.profile, count)
            times, job_id, body, jobs = [], "", {}, []
            cpu_before = server.cpu_seconds()
            with CpuBurners(args.contention):
                for run in range(args.repeat):
                    # A loaded machine is slow: the job gets longer, never a tenant less (that is the check).
                    seconds, job_id, body = run_job(server.url, sql, args.poll_interval, args.wait,
                                                    120 * (1 + args.contention))
                    times.append(seconds)
                    jobs.append(job_errors(body))
                    if args.contention:
                        print(f"    job {run + 1:3d} under {args.contention} CPU burners: {seconds:6.3f} s  "
                              f"queried {jobs[-1]['queried']}  errored {jobs[-1]['errored']}  "
                              f"{list(jobs[-1]['errors'].items())[:3] or ''}", flush=True)
            cpu = (server.cpu_seconds() - cpu_before) / args.repeat
            verdict = check(body, all_rows(server.url, job_id, body), expected)
            errored_jobs = sum(1 for job in jobs if job["errored"])
            if errored_jobs and verdict.startswith("ok"):
                verdict = f"MISMATCH {errored_jobs} of {len(jobs)} jobs had errored tenants"
            floor_s, pipe_s = statistics.median(floors), statistics.median(times)
            target = verdict_against_target(count, pipe_s, pipe_s / floor_s)
            parallel_s = statistics.median(parallel)
            results.append({"tenants": count, "query": name, "rows": len(expected), "floor_s": floor_s,
                            "floor_on_cores_s": parallel_s, "pipeline_s": pipe_s, "ratio": pipe_s / floor_s,
                            "server_cpu_s": cpu, "check": verdict, "target": target,
                            "contention": args.contention, "jobs": jobs})
            print(f"  {name:9s} rows {len(expected):6d}  floor {floor_s:6.3f} s "
                  f"(on {os.cpu_count()} cores {parallel_s:.3f} s)  pipeline {pipe_s:6.3f} s "
                  f"(min {min(times):.3f}, max {max(times):.3f})  ratio {pipe_s / floor_s:4.1f}x  "
                  f"server CPU {cpu:5.2f} s/job  {verdict}  {target}", flush=True)
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=60)
    return results


# ------------------------------------------------------------------------------------------ S3 backend


def s3_floor(moto_url: str, buckets: list[str], sql: str, threads: int) -> tuple[float, list[list[Any]]]:
    """Seconds for `threads` threads to query every tenant in S3, each tenant in a fresh DuckDB instance
    set up as the sandbox's (httpfs loaded from its wheel, the S3 secret for the local endpoint), and
    the rows with the bucket first, in the buckets' order."""
    from queryall.dal.tenant_databases import S3TenantDatabases
    from queryall_local.s3_tenants import s3_tenant_databases_value

    os.environ.update({"AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    backend = S3TenantDatabases(s3_tenant_databases_value())
    backend.session_setup()  # the credentials, resolved once (as a batch does)
    wrapped = f"SELECT * FROM ({sql}) LIMIT {LIMIT}"

    def one(bucket: str) -> list[list[Any]]:
        con = backend.open_session()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET threads = 1")
            backend.use(con, bucket)
            return [[bucket, *row] for row in con.execute(wrapped).fetchall()]
        finally:
            con.close()

    one(buckets[0])  # warm: httpfs's first load checks its signature (once per process)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, buckets))
    return time.perf_counter() - started, [row for rows in results for row in rows]


def s3_download_floor(moto_url: str, buckets: list[str], sql: str, threads: int) -> tuple[float, list[list[Any]]]:
    """Seconds for `threads` threads to download every tenant from S3 (one GET, and one for its WAL, as
    the pipeline does) and query it from a local file, each thread with one DuckDB instance of its own;
    the rows with the bucket first, in the buckets' order."""
    import boto3
    from botocore.config import Config

    from queryall.dal.tenant_databases import S3TenantDatabases
    from queryall_local.s3_tenants import s3_tenant_databases_value

    backend = S3TenantDatabases(s3_tenant_databases_value())
    config = Config(signature_version="s3v4", response_checksum_validation="when_required")
    local = threading.local()
    folder = tempfile.mkdtemp(prefix="queryall-download-floor-")
    wrapped = f"SELECT * FROM ({sql}) LIMIT {LIMIT}"

    def one(bucket: str) -> list[list[Any]]:
        if not hasattr(local, "con"):
            local.s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", config=config,
                                    aws_access_key_id="testing", aws_secret_access_key="testing")
            local.con = duckdb.connect(config={"threads": 1})
            local.path = os.path.join(folder, f"{threading.get_ident()}.duckdb")
        key = backend.key(bucket)
        with open(local.path, "wb") as file:
            shutil.copyfileobj(local.s3.get_object(Bucket=backend.s3_bucket, Key=key)["Body"], file)
        with contextlib.suppress(local.s3.exceptions.NoSuchKey):
            local.s3.get_object(Bucket=backend.s3_bucket, Key=key + ".wal")
        local.con.execute(f"ATTACH '{local.path}' AS tenant (READ_ONLY)")
        try:
            local.con.execute("USE tenant")
            return [[bucket, *row] for row in local.con.execute(wrapped).fetchall()]
        finally:
            local.con.execute("USE memory")
            local.con.execute("DETACH tenant")

    try:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(one, buckets))
        return time.perf_counter() - started, [row for rows in results for row in rows]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _pipeline(server: LocalServer, sql: str, args: argparse.Namespace, repeat: int) -> tuple[float, list[float], dict]:
    """The median of `repeat` jobs after a warm-up job, every time, and the last job's poll body
    (its rows checked by the caller)."""
    run_job(server.url, sql, args.poll_interval, args.wait, 600)
    times, body, job_id = [], {}, ""
    for _ in range(repeat):
        seconds, job_id, body = run_job(server.url, sql, args.poll_interval, args.wait, 600)
        times.append(seconds)
    return statistics.median(times), times, {"job_id": job_id, "body": body}


def bench_s3(count: int, args: argparse.Namespace) -> list[dict]:
    """Tenants in the local S3 with `--s3-latency-ms`: pipeline, floor, K = 1 and 0 ms in one run."""
    directory = tenants_dir(count, args.root)
    buckets = sorted(bucket_names(count))
    parameters = dict(p.split("=", 1) for p in args.parameter)
    concurrency = int(parameters.get("QueryConcurrency", 8))
    workers = args.lambda_concurrency or os.cpu_count() or 1
    extra = ["--lambda-concurrency", str(workers), "--tenants-backend", "s3"]
    latency = ["--s3-latency-ms", f"{args.s3_latency_ms:g}"]
    print(f"\n== {count} tenants in S3, {args.s3_latency_ms:g} ms per S3 request, K = {concurrency}, "
          f"{workers} workflow slots; load average {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for name, sql in (args.sql or QUERIES).items():
        if args.queries and name not in args.queries:
            continue
        _, expected = floor(directory, buckets, sql)
        with LocalServer(directory, parameters, extra + latency) as server:
            pipe_s, times, last = _pipeline(server, sql, args, args.repeat)
            verdict = check(last["body"], all_rows(server.url, last["job_id"], last["body"]), expected)
            floors, download_floors = [], []
            for _ in range(args.repeat):
                seconds, rows = s3_floor(server.moto_url, buckets, sql, concurrency * workers)
                floors.append(seconds)
                seconds, download_rows = s3_download_floor(server.moto_url, buckets, sql, concurrency * workers)
                download_floors.append(seconds)
            if _normalise(rows) != _normalise(expected) or _normalise(download_rows) != _normalise(expected):
                verdict = "MISMATCH a floor's rows differ from the files'"
        floor_s, download_floor_s = statistics.median(floors), statistics.median(download_floors)
        k1_s = before_s = zero_s = math.nan
        k1_times: list[float] = []
        before_times: list[float] = []
        zero_times: list[float] = []
        if not args.floor_only:
            with LocalServer(directory, {**parameters, "QueryConcurrency": "1"}, extra + latency) as server:
                k1_s, k1_times, _ = _pipeline(server, sql, args, max(1, args.repeat // 3))
            one_at_a_time_over_s3 = {**parameters, "QueryConcurrency": "1", "TenantDownloadMaxMB": "0"}
            with LocalServer(directory, one_at_a_time_over_s3, extra + latency) as server:
                before_s, before_times, _ = _pipeline(server, sql, args, max(1, args.repeat // 3))
            with LocalServer(directory, parameters, extra) as server:
                zero_s, zero_times, _ = _pipeline(server, sql, args, args.repeat)
        ratio, speedup, speedup_before = pipe_s / floor_s, k1_s / pipe_s, before_s / pipe_s
        if args.floor_only:
            target = f"target (<= 1.5x floor) {'met' if ratio <= 1.5 else 'MISSED'}"
        else:
            target = (f"target (<= 1.5x floor, >= 5x one at a time over S3) "
                      f"{'met' if ratio <= 1.5 and speedup_before >= 5 else 'MISSED'}")
        results.append({"tenants": count, "query": name, "backend": "s3", "s3_latency_ms": args.s3_latency_ms,
                        "concurrency": concurrency, "workers": workers, "rows": len(expected),
                        "pipeline_s": pipe_s, "pipeline_times": times, "floor_s": floor_s, "floor_times": floors,
                        "download_floor_s": download_floor_s, "download_floor_times": download_floors,
                        "k1_s": k1_s, "k1_times": k1_times, "one_at_a_time_over_s3_s": before_s,
                        "one_at_a_time_over_s3_times": before_times,
                        "zero_latency_s": zero_s, "zero_times": zero_times,
                        "ratio": ratio, "ratio_to_download_floor": pipe_s / download_floor_s,
                        "speedup_over_k1": speedup, "speedup_over_one_at_a_time_over_s3": speedup_before,
                        "check": verdict, "target": target, "load_average": os.getloadavg()})
        print(f"  {name:9s} rows {len(expected):6d}  pipeline {pipe_s:6.3f} s (min {min(times):.3f}, "
              f"max {max(times):.3f})\n    S3 floor ({concurrency * workers} threads) {floor_s:6.3f} s: "
              f"ratio {ratio:4.2f}x;  download floor {download_floor_s:6.3f} s: ratio {pipe_s / download_floor_s:4.2f}x"
              f"\n    K=1 {k1_s:6.3f} s ({speedup:4.1f}x slower);  K=1 over S3 (as before) {before_s:6.3f} s "
              f"({speedup_before:4.1f}x slower);  at 0 ms {zero_s:6.3f} s\n    {verdict}  {target}  "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    return results


def _start_profiler(server: LocalServer, prefix: Path, count: int) -> subprocess.Popen[bytes]:
    """py-spy sampling the server and its query workers (all threads) into folded stacks."""
    assert server.process is not None
    output = Path(f"{prefix}-{count}.folded.txt")
    command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.process.pid),
               "--format", "raw", "--output", str(output), "--rate", "100", "--nonblocking", "--subprocesses"]
    if os.environ.get("PYSPY_GIL"):  # only the threads holding the GIL: what a process spends CPU on
        command.append("--gil")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[177, 1000])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (the median is reported)")
    parser.add_argument("--queries", nargs="+", choices=sorted(QUERIES), default=None,
                        help="which built-in queries to run")
    parser.add_argument("--root", type=Path, default=ROOT / ".queryall", help="where seeded tenants are cached")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between polls")
    parser.add_argument("--lambda-concurrency", type=int, default=None, help="the local stack's workflow slots")
    parser.add_argument("--wait", action="store_true", help="long-poll GET /query-all/wait instead of polling")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter override, e.g. QueryBatchSize=50 (repeatable)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the server into PREFIX-N.folded.txt")
    parser.add_argument("--contention", type=int, default=0, metavar="N",
                        help="N processes burning CPU while the pipeline's jobs run; prints each job's errors")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--tenants-dir", type=Path, default=None,
                        help="benchmark the warehouse_<bucket>.duckdb files in this folder instead of seeding")
    parser.add_argument("--backend", choices=["folder", "s3"], default="folder",
                        help="s3: tenants in the local S3 (with --s3-latency-ms), against the S3 floor")
    parser.add_argument("--s3-latency-ms", type=float, default=20.0, metavar="N",
                        help="with --backend s3: ms added before every S3 request")
    parser.add_argument("--floor-only", action="store_true",
                        help="with --backend s3: only the pipeline and the floor (no K = 1 or 0 ms runs), "
                             "as the 1,000-tenant target needs")
    parser.add_argument("--sql", action="append", default=[], metavar="NAME=SQL",
                        help="a query to run instead of the built-in ones (repeatable)")
    args = parser.parse_args()
    if any("=" not in q for q in args.sql):
        parser.error("--sql takes NAME=SQL")
    args.sql = dict(q.split("=", 1) for q in args.sql)
    if args.queries and args.sql:
        parser.error("--queries picks built-in queries; with --sql, name only the queries to run")
    counts = [0] if args.tenants_dir is not None else args.tenants
    run = bench_s3 if args.backend == "s3" else bench
    results = [r for count in counts for r in run(count, args)]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["check"].startswith("ok") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
