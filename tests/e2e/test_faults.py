"""Fault injection on the local stack (`queryall local serve --faults`, local only), over real HTTP.

With 10% of the tenants faulty, the job completes; exactly the tenants whose query raised, hung or came
back corrupt are in `meta.errors`, each with its own message, and none of their rows are merged; the
batches that were throttled or timed out are run again by the state machine's Retry and lose no tenant.
QUERYALL_FAULT_TENANTS sets the tenant count (200 here; `make fault-injection` runs 1,000).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT

TENANTS = int(os.environ.get("QUERYALL_FAULT_TENANTS", "200"))
API_KEY = "fault-key"
QUERY_TIMEOUT_SECONDS = 2

pytestmark = pytest.mark.timeout(600)


def _buckets() -> list[str]:
    return [f"t{i:04d}" for i in range(TENANTS)]


def _faults(buckets: list[str]) -> dict[str, list[str]]:
    """10% of the tenants, spread over the kinds (and so over different batches)."""
    chosen = buckets[3::10]
    kinds = ["raise", "hang", "corrupt", "throttle", "timeout"]
    faults: dict[str, list[str]] = {kind: [] for kind in kinds}
    for index, bucket in enumerate(chosen):
        faults[kinds[index % len(kinds)]].append(bucket)
    return faults


@pytest.fixture(scope="module")
def fault_tenants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TENANTS small databases: each `person` table has as many rows as the tenant's number mod 7, plus 1."""
    directory = tmp_path_factory.mktemp("fault-tenants")
    template = directory / "template.duckdb"
    for index, bucket in enumerate(_buckets()):
        with duckdb.connect(str(template)) as con:
            con.execute("CREATE OR REPLACE TABLE person AS SELECT range AS id FROM range(?)", [index % 7 + 1])
        shutil.copyfile(template, directory / f"warehouse_{bucket}.duckdb")
    template.unlink()
    return directory


@pytest.fixture(scope="module")
def faulty_stack(fault_tenants: Path, tmp_path_factory: pytest.TempPathFactory):
    """`queryall local serve` in its own process (the session's stack has no faults), faults from
    QUERYALL_FAULTS, with a short query timeout so the hanging tenants end soon."""
    spec = ";".join(f"{kind}={','.join(buckets)}" for kind, buckets in _faults(_buckets()).items())
    log_path = tmp_path_factory.mktemp("fault-log") / "serve.log"
    env = {**os.environ, "QUERYALL_FAULTS": spec,
           "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("functions", "infra/local", "client"))}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "queryall_local", "local", "serve", "--port", "0", "--tenants-dir",
             str(fault_tenants), "--api-key", API_KEY, "--parameter", f"QueryTimeoutSeconds={QUERY_TIMEOUT_SECONDS}",
             "--parameter", "QueryBatchSize=20"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 90
            url = None
            while url is None and time.monotonic() < deadline and process.poll() is None:
                match = re.search(r"ready at (http://\S+)", log_path.read_text(errors="replace"))
                url = match.group(1) if match else None
                time.sleep(0.1)
            assert url, log_path.read_text(errors="replace")[-3000:]
            yield url, log_path
        finally:
            process.terminate()
            process.wait(60)


def _call(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"x-api-key": API_KEY, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_faulty_tenants_are_reported_each_with_its_own_message_and_nothing_is_lost(faulty_stack) -> None:
    url, log_path = faulty_stack
    buckets = _buckets()
    faults = _faults(buckets)
    status, answer = _call(f"{url}/query-all", "POST", {"sql": "SELECT count(*) AS people FROM person"})
    assert status == 202, answer
    job_id = answer["data"]["job_id"]
    deadline = time.monotonic() + 300
    while True:
        status, body = _call(f"{url}/query-all/jobs/{job_id}")
        assert status == 200, body
        if body["data"].get("status") != "processing":
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)

    meta = body["meta"]
    errored = set(faults["raise"]) | set(faults["hang"]) | set(faults["corrupt"])
    assert set(meta["errors"]) == errored
    for bucket in faults["raise"]:
        assert f"injected fault: the query raised on tenant {bucket}" in meta["errors"][bucket]
    for bucket in faults["hang"]:
        assert meta["errors"][bucket] == f"Query exceeded the {QUERY_TIMEOUT_SECONDS} s timeout"
    for bucket in faults["corrupt"]:
        assert meta["errors"][bucket].startswith("Partial result failed verification: 1 rows recorded, 2 in")
    assert meta["databases_errored"] == len(errored)
    assert meta["databases_queried"] == TENANTS - len(errored)
    # Every other tenant answered exactly, the throttled and timed-out ones included; no faulty row merged.
    assert meta["total_rows"] == TENANTS - len(errored) and not meta["truncated"]
    rows = {bucket: people for bucket, people in body["data"]["rows"]}
    assert rows == {b: buckets.index(b) % 7 + 1 for b in buckets if b not in errored}

    # The throttles and timeouts were injected (once per batch holding such a tenant) and retried.
    log = log_path.read_text(errors="replace")
    throttled = len(re.findall(rf"injected fault: Lambda.TooManyRequestsException for batch \d+ of job {job_id}", log))
    timed_out = len(re.findall(rf"injected fault: Sandbox.Timedout for batch \d+ of job {job_id}", log))
    assert throttled >= 1 and timed_out >= 1, log[-3000:]


def test_a_bad_fault_spec_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("functions", "infra/local", "client"))}
    result = subprocess.run([sys.executable, "-m", "queryall_local", "local", "serve", "--tenants-dir", str(tmp_path),
                             "--faults", "explode=a"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "expected KIND=bucket" in result.stderr
