"""Load benchmark: many callers submitting and polling at once against the local stack.

``--submitters`` callers (default 50) each submit jobs, all released at the same instant, then long-poll
``GET /query-all/wait`` until their job ends; meanwhile ``--pollers`` callers (default 500) poll
``GET /query-all/jobs/{id}`` of submitted jobs in turn. It prints submit, poll and wait latency
percentiles, jobs submitted against jobs ended, and every response outside the contract (any 5xx; any
error body that is not exactly ``{"error": {"code", "message"}}``; any success that is not JSON with
``data``), then whether each target is met:

* 0 lost (every accepted job can still be read), 0 stuck (every job ended before ``--deadline``),
  0 5xx, 0 envelope violations;
* submit p95 ≤ 0.5 s with the submitters all at once.

    python bench/load.py                               # seeds 40 tenants, serves the stack, 50 x 500
    python bench/load.py --submitters 50 --pollers 500 --rounds 3
    python bench/load.py --url http://127.0.0.1:3000 --api-key local-dev-key   # a stack already running
    python bench/load.py --profile /tmp/load           # py-spy the server while it runs

Exit status 0 only when every target is met (``--no-latency-target`` leaves out the submit p95).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQL = "SELECT count(*) AS people FROM person"
SUBMIT_P95_TARGET = 0.5
FINAL = {"completed", "failed", "cancelled"}


@dataclass
class Sample:
    kind: str  # submit | poll | wait
    seconds: float
    status: int
    violation: str | None = None


@dataclass
class LoadReport:
    samples: list[Sample] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    ended: dict[str, str] = field(default_factory=dict)  # job id -> final status
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    submit_wall_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)

    def latencies(self, kind: str) -> list[float]:
        return sorted(s.seconds for s in self.samples if s.kind == kind)

    @property
    def server_errors(self) -> list[Sample]:
        return [s for s in self.samples if s.status >= 500]

    @property
    def violations(self) -> list[Sample]:
        """Responses outside the contract (a 5xx's body is kept here too, to be shown)."""
        return [s for s in self.samples if s.violation]

    def targets(self, latency_target: bool = True) -> dict[str, bool]:
        met = {
            "0 lost": not self.lost,
            "0 stuck": not self.stuck,
            "0 5xx": not self.server_errors,
            "0 envelope violations": not [s for s in self.violations if s.status < 500],
            "every submit accepted": len(self.submitted) == len(self.latencies("submit")),
        }
        if latency_target:
            met[f"submit p95 <= {SUBMIT_P95_TARGET} s"] = percentile(self.latencies("submit"), 95) <= SUBMIT_P95_TARGET
        return met


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[index]


def envelope_violation(status: int, raw: bytes) -> str | None:
    """What is wrong with a response by the API's contract, or None."""
    try:
        body = json.loads(raw)
    except ValueError:
        return f"{status}: not JSON: {raw[:120]!r}"
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if (not isinstance(body, dict) or set(body) != {"error"} or not isinstance(error, dict)
                or set(error) != {"code", "message"} or not all(isinstance(v, str) for v in error.values())):
            return f"{status}: not the error envelope: {raw[:200]!r}"
        return None
    if not isinstance(body, dict) or "data" not in body:
        return f"{status}: success without data: {raw[:200]!r}"
    return None


class Client:
    def __init__(self, base_url: str, api_key: str, report: LoadReport, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.report = report
        self.timeout = timeout

    def call(self, kind: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"x-api-key": self.api_key, "content-type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (OSError, urllib.error.URLError) as error:  # reset, refused, timed out: a failure too
            self.report.add(Sample(kind, time.perf_counter() - started, 599, f"no response: {error}"))
            return 599, None
        seconds = time.perf_counter() - started
        violation = envelope_violation(status, raw) or (f"{status}: {raw[:300]!r}" if status >= 500 else None)
        self.report.add(Sample(kind, seconds, status, violation))
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None


def run_load(
    base_url: str, api_key: str, *, submitters: int = 50, pollers: int = 500, rounds: int = 1, sql: str = SQL,
    poll_interval: float = 1.0, deadline_seconds: float = 300.0, body: dict | None = None,
) -> LoadReport:
    """Submit ``submitters * rounds`` jobs (each round released at once) while ``pollers`` poll them."""
    report = LoadReport()
    client = Client(base_url, api_key, report)
    request_body = body or {"sql": sql}
    done = threading.Event()
    deadline = time.monotonic() + deadline_seconds

    def submitter(barrier: threading.Barrier) -> None:
        barrier.wait()
        submitted_at = time.perf_counter()
        status, answer = client.call("submit", "POST", "/query-all", request_body)
        if status != 202 or not answer:
            return
        job_id = answer["data"]["job_id"]
        with report.lock:
            report.submitted.append(job_id)
        while time.monotonic() < deadline:
            timeout = max(1, min(20, int(deadline - time.monotonic())))
            status, answer = client.call("wait", "GET", f"/query-all/wait?job_ids={job_id}&timeout={timeout}")
            if status == 200 and answer and answer["data"]["jobs"]:
                with report.lock:
                    report.ended[job_id] = answer["data"]["jobs"][0]["status"]
                    report.end_to_end.append(time.perf_counter() - submitted_at)
                return
            if status != 200:
                time.sleep(0.2)

    def poller(seed: int) -> None:
        rng = random.Random(seed)
        time.sleep(rng.random() * poll_interval)  # spread the first polls
        while not done.is_set() and time.monotonic() < deadline:
            with report.lock:
                candidates = [j for j in report.submitted if j not in report.ended]
            if candidates:
                client.call("poll", "GET", f"/query-all/jobs/{rng.choice(candidates)}")
            done.wait(poll_interval)

    poll_threads = [threading.Thread(target=poller, args=(i,), daemon=True) for i in range(pollers)]
    for thread in poll_threads:
        thread.start()
    started = time.perf_counter()
    for _ in range(rounds):
        barrier = threading.Barrier(submitters)
        threads = [threading.Thread(target=submitter, args=(barrier,), daemon=True) for _ in range(submitters)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(1.0, deadline - time.monotonic() + 30))
    report.submit_wall_seconds = time.perf_counter() - started
    done.set()
    for thread in poll_threads:
        thread.join(30)

    # Counted at the end, from the service itself: an accepted job that cannot be read is lost, one
    # still processing is stuck.
    for job_id in report.submitted:
        status, answer = client.call("final", "GET", f"/query-all/jobs/{job_id}")
        if status == 404:
            report.lost.append(job_id)
        elif status == 200 and answer:
            final = answer["data"].get("status", "completed")  # a completed job's data holds its rows
            if final == "processing":
                report.stuck.append(job_id)
            else:
                report.ended.setdefault(job_id, final)
    return report


def describe(report: LoadReport, submitters: int, pollers: int, latency_target: bool = True) -> str:
    lines = [f"submitters {submitters}, pollers {pollers}: jobs submitted {len(report.submitted)}, "
             f"ended {len(report.ended)} ({_count(report.ended.values())}), lost {len(report.lost)}, "
             f"stuck {len(report.stuck)}"]
    for kind in ("submit", "poll", "wait"):
        values = report.latencies(kind)
        if values:
            lines.append(f"  {kind:<6} n={len(values):<6} p50 {percentile(values, 50):6.3f} s  "
                         f"p95 {percentile(values, 95):6.3f} s  p99 {percentile(values, 99):6.3f} s  "
                         f"max {values[-1]:6.3f} s")
    if report.end_to_end:
        e2e = sorted(report.end_to_end)
        lines.append(f"  submit -> ended: p50 {percentile(e2e, 50):.2f} s, p95 {percentile(e2e, 95):.2f} s, "
                     f"max {e2e[-1]:.2f} s")
    statuses = _count(str(s.status) for s in report.samples)
    lines.append(f"  responses by status: {statuses}; 5xx {len(report.server_errors)}; "
                 f"envelope violations {len([s for s in report.violations if s.status < 500])}")
    for sample in report.violations[:8]:
        lines.append(f"    {sample.kind} {sample.status}: {sample.violation or ''}")
    for target, met in report.targets(latency_target).items():
        lines.append(f"  target {target:<28} {'met' if met else 'MISSED'}")
    return "\n".join(lines)


def _count(values) -> str:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submitters", type=int, default=50, help="callers submitting at the same instant")
    parser.add_argument("--pollers", type=int, default=500, help="callers polling submitted jobs")
    parser.add_argument("--rounds", type=int, default=1, help="times the submitters submit together")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between a poller's polls")
    parser.add_argument("--deadline", type=float, default=300.0, help="a job still processing after this is stuck")
    parser.add_argument("--sql", default=SQL)
    parser.add_argument("--tenants", type=int, default=40, help="tenants to seed (cached under --root)")
    parser.add_argument("--root", type=Path, default=ROOT / ".queryall")
    parser.add_argument("--url", default=None, help="a local stack already running (else one is started)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the server into PREFIX.folded.txt")
    parser.add_argument("--no-latency-target", action="store_true", help="judge only lost/stuck/5xx/envelope")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--server-log", type=Path, default=None, help="keep the started server's log here")
    args = parser.parse_args()
    latency_target = not args.no_latency_target

    if args.url:
        report = run_load(args.url, args.api_key or "local-dev-key", submitters=args.submitters,
                          pollers=args.pollers, rounds=args.rounds, sql=args.sql, poll_interval=args.poll_interval,
                          deadline_seconds=args.deadline)
    else:
        sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "functions"), str(ROOT / "infra" / "local")]
        import fanout  # the same seeded tenants and server subprocess as the fan-out bench

        directory = fanout.tenants_dir(args.tenants, args.root)
        with fanout.LocalServer(directory, {}, []) as server:
            profiler = _start_profiler(server.process.pid, args.profile) if args.profile else None
            # One job first, so the first submits do not pay the stack's cold starts.
            run_load(server.url, fanout.API_KEY, submitters=1, pollers=0, sql=args.sql, deadline_seconds=60)
            report = run_load(server.url, fanout.API_KEY, submitters=args.submitters, pollers=args.pollers,
                              rounds=args.rounds, sql=args.sql, poll_interval=args.poll_interval,
                              deadline_seconds=args.deadline)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
                profiler.wait(60)
                print(f"  profile: {args.profile}.folded.txt")
            if args.server_log:
                args.server_log.write_text(Path(server.log.name).read_text(errors="replace"))
    print(describe(report, args.submitters, args.pollers, latency_target))
    if args.json:
        args.json.write_text(json.dumps({
            kind: {f"p{p}": percentile(report.latencies(kind), p) for p in (50, 95, 99)}
            for kind in ("submit", "poll", "wait")
        } | {"submitted": len(report.submitted), "ended": len(report.ended), "lost": len(report.lost),
             "stuck": len(report.stuck), "5xx": len(report.server_errors), "violations": len(report.violations)},
            indent=2))
    return 0 if all(report.targets(latency_target).values()) else 1


def _start_profiler(pid: int, prefix: Path):
    import subprocess

    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                             "--nonblocking", "--output", f"{prefix}.folded.txt"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    raise SystemExit(main())
