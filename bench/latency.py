"""Small-job latency: submit -> GET /query-all/wait returns, on the local stack, with a breakdown by step.

A small job (one tenant, ``SELECT 1``, by default) is all orchestration: this measures what a caller
waits for, p50/p95 over ``--jobs`` jobs after warm-ups, and splits each job along the way it went:

* ``submit``: POST /query-all until its 202 (the SQL guard, the job item, StartExecution);
* ``to start``: from the 202 to the execution's start as Step Functions recorded it (negative when
  the execution started before the response reached the caller);
* each state of the execution, entered to exited (``PlanTargets``, ``QueryBatches``, ``Aggregate``),
  and ``transitions``: the execution's time outside those states (moto's interpreter moving on);
* ``to wait``: from the execution's end to the wait route's answer (the wait's reads, rendering the result).

The execution history comes from the local stack's own Step Functions (moto), read after each job.
Targets (issue 16 item 6): p50 <= 0.25 s for the one-tenant job on this machine, rows unchanged (each
job's rows are checked against the expected rows). The machine is shared: the load average is printed
beside the figures, with the server's CPU time per job (user + system, every thread: the stack is one
process, so on a busy machine its wall time follows the CPU it needs), and before/after comparisons
belong in one run, back to back.

    python bench/latency.py                                   # 20 one-tenant SELECT 1 jobs
    python bench/latency.py --tenants 40 --sql 'SELECT count(*) AS people FROM person' --jobs 20
    python bench/latency.py --json /tmp/latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from fanout import ROOT, LocalServer, _request, tenants_dir

TARGET_P50_S = 0.25
DEFAULT_SQL = "SELECT 1 AS one"
STATES = ("PlanTargets", "QueryBatches", "Aggregate")


def moto_url(server: LocalServer) -> str:
    """The stack's moto endpoint, from its start line in the server's log."""
    match = re.search(r"local stack started: gateway \S+, moto (http://\S+)",
                      Path(server.log.name).read_text(errors="replace"))
    if match is None:
        raise RuntimeError("the local stack did not log its moto endpoint")
    return match.group(1)


def _seconds(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def execution_steps(sfn: Any, state_machine_arn: str, job_id: str) -> dict[str, float]:
    """Start and stop (epoch seconds) of the job's execution, and each top-level state's time in it."""
    arn = state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
    described = sfn.describe_execution(executionArn=arn)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered: dict[str, float] = {}
    steps: dict[str, float] = {"started": _seconds(described["startDate"]), "stopped": _seconds(described["stopDate"])}
    for event in events:
        at = _seconds(event["timestamp"])
        if event["type"].endswith("StateEntered"):
            entered[event["stateEnteredEventDetails"]["name"]] = at
        elif event["type"].endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if name in STATES and name in entered:
                steps[name] = steps.get(name, 0.0) + at - entered[name]
    return steps


def run_job(url: str, body: dict) -> dict[str, Any]:
    """Submit, then long-poll the wait route until the job is done: client-side timestamps and the job."""
    started = time.time()
    job_id = _request(f"{url}/query-all", "POST", body)["data"]["job_id"]
    submitted = time.time()
    while True:
        waited = _request(f"{url}/query-all/wait?job_ids={job_id}&timeout_seconds=20")["data"]
        if waited["jobs"]:
            return {"job_id": job_id, "started": started, "submitted": submitted, "returned": time.time(),
                    "job": waited["jobs"][0]}
        if time.time() - started > 120:
            raise RuntimeError(f"job {job_id} still processing after 120 s")


def breakdown(run: dict[str, Any], steps: dict[str, float]) -> dict[str, float]:
    """One job's time by step, in seconds (see the module's docstring)."""
    in_states = sum(steps.get(name, 0.0) for name in STATES)
    parts = {
        "total": run["returned"] - run["started"],
        "submit": run["submitted"] - run["started"],
        "to start": steps["started"] - run["submitted"],
        **{name: steps.get(name, 0.0) for name in STATES},
        "transitions": steps["stopped"] - steps["started"] - in_states,
        "to wait": run["returned"] - steps["stopped"],
    }
    return parts


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="measured jobs (after --warmup ones)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=1, help="seeded tenants the stack serves")
    parser.add_argument("--sql", default=DEFAULT_SQL)
    parser.add_argument("--root", type=Path, default=ROOT / ".queryall", help="where seeded tenants are cached")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter override (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="also write every job's breakdown here")
    args = parser.parse_args()

    directory = tenants_dir(args.tenants, args.root)
    parameters = dict(p.split("=", 1) for p in args.parameter)
    body = {"sql": args.sql}
    load_before = os.getloadavg()
    with LocalServer(directory, parameters, []) as server:
        sfn = boto3.client("stepfunctions", endpoint_url=moto_url(server), region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        expected: list | None = None
        for _ in range(args.warmup):
            expected = run_job(server.url, body)["job"]["data"]["rows"]
        runs = []
        cpu_before = server.cpu_seconds()
        for _ in range(args.jobs):
            run = run_job(server.url, body)
            if run["job"]["status"] != "completed" or run["job"]["data"]["rows"] != expected:
                raise SystemExit(f"job {run['job_id']}: {run['job'].get('status')}, rows differ from the warm-up's")
            runs.append(breakdown(run, execution_steps(sfn, machine, run["job_id"])))
        # Reading the histories costs the server a little CPU too; it is counted (an overestimate).
        cpu = (server.cpu_seconds() - cpu_before) / args.jobs
    load_after = os.getloadavg()

    print(f"{args.jobs} jobs, {args.tenants} tenant(s), {args.sql!r}; rows per job {len(expected or [])}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} cores)")
    print(f"  {'step':12s} {'p50 ms':>8s} {'p95 ms':>8s} {'mean ms':>8s}")
    for step in runs[0]:
        values = [r[step] for r in runs]
        print(f"  {step:12s} {statistics.median(values) * 1000:8.1f} {percentile(values, 0.95) * 1000:8.1f} "
              f"{statistics.fmean(values) * 1000:8.1f}")
    p50 = statistics.median(r["total"] for r in runs)
    met = "met" if p50 <= TARGET_P50_S else "MISSED"
    p95 = percentile([r["total"] for r in runs], 0.95)
    print(f"submit -> wait returns: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; "
          f"target p50 <= {TARGET_P50_S * 1000:.0f} ms {met}; server CPU {cpu * 1000:.0f} ms per job")
    if args.json:
        args.json.write_text(json.dumps({"load_average": [load_before, load_after], "server_cpu_s": cpu,
                                         "jobs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
