"""Cold start: each function's handler import time, and the first invocation after it.

Every measurement is a fresh Python process with the function's environment from ``template.yaml``
(as deployed: tracing on, so Powertools behaves as it does in Lambda). The floor is measured in the
same run: ``import boto3`` plus ``from aws_lambda_powertools.event_handler import APIGatewayHttpResolver``,
once before each run of each function; "x floor" is the median over a function's runs of its import
time over the floor run just before it (the machine is shared: its load changes during a benchmark).
For the API functions (submit, poll, wait) the first invocation runs against a local moto server
(the local stack, without its gateway), so "import + first invoke" is the cold request as a caller
sees it, minus Lambda's own start-up and the network. Times are the child's CPU time (imports and
handler work are CPU-bound); CPU time grows less with load than wall time, but on a busy 2-core
machine it still doubles (shared caches and cores), which is why ratios are taken in pairs.

The functions' code is imported from a copy of functions/ without bytecode caches, as `sam build`
packages it (a test run leaves __pycache__ in functions/; reading those would skip compiling our
modules, and vary the figures by ~0.06x of the floor with what ran before).

In Lambda the functions pause the garbage collector while their modules load (queryall.handlers), so
part of what they save is in the floor's own imports: the floor is also measured that way and printed
beside it, for reading the ratios; the target is against the plain floor.

    python bench/coldstart.py               # 7 runs per measurement, medians
    python bench/coldstart.py --importtime  # also the largest modules from -X importtime per function
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra" / "local")]

from queryall_local.template import load_template  # noqa: E402

API_FUNCTIONS = ("SubmitFunction", "PollFunction", "WaitFunction")
TARGET_RATIO = 1.2
FLOOR = "import boto3\nfrom aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
API_KEY = "coldstart-key"

# Runs in the child: time the import, then (optionally) one invocation. Prints one JSON line.
_CHILD = r"""
import importlib, json, sys, time
# CPU time of this process: imports are CPU-bound, and other load on the machine does not inflate it.
started = time.process_time()
exec(compile(sys.argv[1], "<import>", "exec"))
imported = time.process_time() - started
result = {"import_s": imported, "modules": sorted(sys.modules)}
if len(sys.argv) > 2:
    module, attribute = sys.argv[2].rsplit(".", 1)
    handler = getattr(sys.modules[module], attribute)
    event = json.loads(sys.argv[3])
    if sys.argv[4]:  # submit's synchronous SQL check: answered here, as the SqlGuard function would
        import botocore.handlers, io
        from botocore.awsrequest import AWSResponse
        from botocore.response import StreamingBody
        def guard(params=None, **_):
            sql = json.loads(params["body"])["sql"]
            body = json.dumps({"ok": True, "sql": sql}).encode()
            return (AWSResponse("http://guard", 200, {}, None),
                    {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))})
        botocore.handlers.BUILTIN_HANDLERS.append(("before-call.lambda.Invoke", guard))
    class Context:
        function_name = "coldstart"; memory_limit_in_mb = "512"; aws_request_id = "coldstart"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:coldstart"
        def get_remaining_time_in_millis(self): return 30000
    started, cpu = time.perf_counter(), time.process_time()
    response = handler(event, Context())
    result["invoke_s"] = time.process_time() - cpu  # this process's work; the local moto answers elsewhere
    result["invoke_wall_s"] = time.perf_counter() - started
    result["status"] = response.get("statusCode")
print(json.dumps(result))
"""


def _http_event(method: str, path: str, *, body: dict | None = None, query: str = "",
                path_parameters: dict | None = None) -> dict:
    event = {
        "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path, "rawQueryString": query,
        "headers": {"x-api-key": API_KEY, "content-type": "application/json", "host": "localhost"},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "coldstart"},
                           "requestId": "coldstart", "routeKey": f"{method} {path}", "stage": "$default",
                           "accountId": "123456789012", "apiId": "local", "domainName": "localhost",
                           "timeEpoch": 0},
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body)
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event


_UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"
# One representative request per API function (the job is unknown: one read, then a 404 / nothing to wait for).
INVOCATIONS = {
    "SubmitFunction": _http_event("POST", "/query-all", body={"sql": "SELECT count(*) AS n FROM person"}),
    "PollFunction": _http_event("GET", f"/query-all/jobs/{_UNKNOWN_JOB}", path_parameters={"jobId": _UNKNOWN_JOB}),
    "WaitFunction": _http_event("GET", "/query-all/wait", query=f"job_ids={_UNKNOWN_JOB}&timeout_seconds=0"),
}


def _run(code: str, env: dict[str, str], invoke: tuple[str, dict, bool] | None = None,
         importtime: bool = False) -> dict:
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", _CHILD, code]
    if invoke:
        handler, event, guard = invoke
        command += [handler, json.dumps(event), "1" if guard else ""]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if importtime:
        result["importtime"] = done.stderr
    return result


def _largest_imports(importtime: str, count: int = 8) -> list[tuple[int, str]]:
    """Packages by import time (self time of all their modules, microseconds) from -X importtime output."""
    totals: dict[str, int] = {}
    for line in importtime.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].split(":")[-1].strip().isdigit():
            package = parts[2].strip().split(".")[0]
            totals[package] = totals.get(package, 0) + int(parts[0].split(":")[-1])
    return sorted(((micros, package) for package, micros in totals.items()), reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--importtime", action="store_true", help="print the largest imports of each function")
    parser.add_argument("--functions", nargs="+", default=None, help="logical ids (default: every function)")
    args = parser.parse_args()

    from queryall_local.seed import seed_tenants
    from queryall_local.stack import LocalStack

    scratch = Path(tempfile.mkdtemp(prefix="queryall-coldstart-"))
    tenants, functions = scratch / "tenants", scratch / "functions"
    tenants.mkdir()
    seed_tenants(tenants, 2)
    shutil.copytree(ROOT / "functions", functions, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    stack = LocalStack(ROOT / "template.yaml", tenants, API_KEY, with_gateway=False)
    stack.start()
    try:
        spec = load_template(ROOT / "template.yaml", stack._overrides())
        local = stack.runtime.environment()
        base = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))}
        base["PYTHONPATH"] = os.pathsep.join([str(functions), *filter(None, [os.environ.get("PYTHONPATH")])])
        base["PYTHONDONTWRITEBYTECODE"] = "1"  # every run compiles the functions' modules, as in Lambda
        # As deployed: the Lambda runtime's markers make Powertools trace; metrics flush to stdout (EMF).
        lambda_env = {**base, "LAMBDA_TASK_ROOT": str(functions), "AWS_LAMBDA_FUNCTION_NAME": "coldstart",
                      **{k: v for k, v in local.items() if k.startswith("AWS_")}}
        lambda_env.pop("AWS_SAM_LOCAL", None)

        floor, paused = [], []
        for _ in range(args.runs):
            floor.append(_run(FLOOR, lambda_env)["import_s"])
            paused.append(_run("import gc\ngc.disable()\n" + FLOOR, lambda_env)["import_s"] / floor[-1])
        floor_ms = statistics.median(floor) * 1000
        print(f"floor (boto3 + Powertools APIGatewayHttpResolver): {floor_ms:.0f} ms "
              f"(min {min(floor) * 1000:.0f}, max {max(floor) * 1000:.0f}), {args.runs} runs each, medians")
        print(f"floor with the garbage collector paused, as the functions load in Lambda: "
              f"{statistics.median(paused):.2f}x the floor\n")
        print(f"{'function':24s} {'import':>8s} {'x floor':>8s} {'1st invoke':>11s} {'import+1st':>11s}  "
              "duckdb/pyarrow loaded")
        failures = []
        for name, function in spec.functions.items():
            if args.functions and name not in args.functions:
                continue
            env = {**lambda_env, **function.environment}
            env.pop("POWERTOOLS_TRACE_DISABLED", None)
            env.pop("POWERTOOLS_METRICS_DISABLED", None)
            code = f"import {function.module}\n"
            invoke = None
            if name in INVOCATIONS:
                invoke = (function.handler, INVOCATIONS[name], name == "SubmitFunction")
            # Each run right after a floor run: the ratio is the median of those pairs, so a change in
            # the machine's load during the benchmark moves both sides of a ratio alike.
            runs, ratios = [], []
            for _ in range(args.runs):
                paired_floor = _run(FLOOR, lambda_env)["import_s"]
                floor.append(paired_floor)
                runs.append(_run(code, env, invoke))
                ratios.append(runs[-1]["import_s"] / paired_floor)
            imported = statistics.median(r["import_s"] for r in runs) * 1000
            ratio = statistics.median(ratios)
            heavy = sorted({m for r in runs for m in r["modules"] if m in ("duckdb", "pyarrow")})
            line = f"{name:24s} {imported:6.0f}ms {ratio:7.2f}x"
            if invoke:
                first = statistics.median(r["invoke_s"] for r in runs) * 1000
                both = statistics.median(r["import_s"] + r["invoke_s"] for r in runs) * 1000
                statuses = sorted({r["status"] for r in runs})
                line += f" {first:9.0f}ms {both:9.0f}ms"
                line += f"  {', '.join(heavy) or '-'}  (HTTP {'/'.join(map(str, statuses))})"
            else:
                line += f" {'':>11s} {'':>11s}  {', '.join(heavy) or '-'}"
            print(line, flush=True)
            if name in API_FUNCTIONS and (ratio > TARGET_RATIO or heavy):
                failures.append(name)
            if args.importtime:
                detail = _run(code, env, importtime=True)["importtime"]
                for micros, module in _largest_imports(detail):
                    print(f"{'':26s}{micros / 1000:6.0f} ms  {module}")
        print(f"\nfloor over all its runs: {statistics.median(floor) * 1000:.0f} ms (min {min(floor) * 1000:.0f}, "
              f"max {max(floor) * 1000:.0f}); x floor: median of each run over the floor run just before it")
        target = f"API functions (submit, poll, wait) at most {TARGET_RATIO}x the floor, without duckdb/pyarrow"
        print(f"{target}: {'met' if not failures else 'NOT met by ' + ', '.join(failures)}")
        return 1 if failures else 0
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
