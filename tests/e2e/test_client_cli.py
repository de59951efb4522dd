"""The `queryall` client commands, run as a user would (a child process) against the session's local stack:
on a pseudo-terminal (the progress bar appears) and through pipes (plain text only)."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tests.conftest import API_KEY, CORRUPT_BUCKET, ROOT, Api
from tests.tenant_data import direct, tenant_files

pytestmark = pytest.mark.timeout(180)

# Any control character but newline (and tab): no ANSI escapes, no carriage-return redraws.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")



def cli_env(api: Api) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUERYALL_", "FORCE_COLOR", "NO_COLOR"))}
    return env | {"QUERYALL_API_URL": api.base_url, "QUERYALL_API_KEY": API_KEY}


def run_cli(api: Api, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "queryall_local", *args], cwd=ROOT, env=cli_env(api),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def run_on_terminal(api: Api, *args: str, timeout: float = 90) -> tuple[int, str]:
    """The command with stdin, stdout and stderr on a pseudo-terminal; returns its exit code and screen bytes."""
    master, slave = pty.openpty()
    env = cli_env(api) | {"TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"}
    process = subprocess.Popen([sys.executable, "-m", "queryall_local", *args], cwd=ROOT, env=env,
                               stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        return process.wait(timeout=10), output.decode("utf-8", errors="replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()


def test_query_on_a_terminal_shows_a_progress_bar_then_the_table(api: Api, tenants_dir: Path) -> None:
    four = list(tenant_files(tenants_dir))[:4]
    sql = "SELECT count(*) AS n FROM range(40000000) t(i) WHERE hash(i) % 1000 = 0"
    code, screen = run_on_terminal(api, "query", "--sql", sql, *[a for b in four for a in ("--bucket", b)])
    assert code == 0, screen
    assert "\x1b[" in screen  # drawn with terminal escapes
    assert "━" in screen and "databases" in screen and "ETA" in screen
    assert re.search(r"4/4\S* +databases", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen))
    expected = duckdb.sql(sql).fetchone()[0]
    for bucket in four:
        assert re.search(rf"{bucket}\s+│\s+{expected}", screen)
    assert "4 databases queried, 0 skipped, 0 errored" in screen


def test_query_through_a_pipe_prints_plain_text_only(api: Api, tenants_dir: Path) -> None:
    result = run_cli(api, "query", "--sql", "SELECT count(*) AS total FROM person")
    assert result.returncode == 0, result.stderr
    assert not CONTROL.search(result.stdout) and not CONTROL.search(result.stderr)
    files = tenant_files(tenants_dir)
    total = len(files) + 1
    assert re.search(rf"^job [0-9a-f-]{{36}}: {total}/{total} databases \(1 errored\)", result.stderr, re.M)
    assert f"{len(files)} databases queried, 0 skipped, 1 errored" in result.stderr
    assert f"{CORRUPT_BUCKET}: Could not open database" in result.stderr
    lines = result.stdout.splitlines()
    for bucket, path in files.items():
        count = duckdb.connect(str(path), read_only=True).execute("SELECT count(*) FROM person").fetchone()[0]
        assert any(re.search(rf"│ {bucket}\s+│\s+{count} │", line) for line in lines), bucket


def test_csv_output_equals_duckdb_run_directly(api: Api, tenants_dir: Path, tmp_path: Path) -> None:
    sql = "SELECT currency, sum(amount) AS total, count(*) AS payments FROM payment GROUP BY currency ORDER BY currency"
    out = tmp_path / "result.csv"
    result = run_cli(api, "query", "--sql", sql, "--table", "payment", "--format", "csv", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    with out.open(newline="") as stream:
        rows = list(csv.reader(stream))
    expected = [["_bucket", "currency", "total", "payments"]]
    for bucket, path in tenant_files(tenants_dir).items():
        with duckdb.connect(str(path), read_only=True) as con:
            if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'payment'").fetchone()[0]:
                expected += [[bucket, *(str(value) for value in row)] for row in con.execute(sql).fetchall()]
    assert len(expected) > 10
    assert rows == expected, result.stderr  # the client reports skipped and errored tenants there


def test_truncated_result_is_written_whole_from_the_results_pages(api: Api, tenants_dir: Path, tmp_path: Path) -> None:
    # About 7 MB of rows: more than one poll response may carry, so the client must page for the rest.
    sql = "SELECT id, repeat(email, 12) AS padding FROM person ORDER BY id"
    out = tmp_path / "big.csv"
    result = run_cli(api, "query", "--sql", sql, "--limit", "10000", "--format", "csv", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "fetched all" in result.stderr
    with out.open(newline="") as stream:
        rows = list(csv.reader(stream))
    expected = [[bucket, str(i), padding] for bucket, path in tenant_files(tenants_dir).items()
                for i, padding in direct(path, sql)]
    assert len(rows) - 1 == len(expected) > 10_000
    assert rows[1:] == expected


def test_arrow_and_json_outputs(api: Api, tenants_dir: Path, tmp_path: Path) -> None:
    two = list(tenant_files(tenants_dir))[:2]
    sql = "SELECT id, email, 1.50::DECIMAL(6,2) AS price FROM person ORDER BY id LIMIT 2"
    buckets = [a for b in two for a in ("--bucket", b)]
    arrow_file, json_file = tmp_path / "r.arrow", tmp_path / "r.json"
    assert run_cli(api, "query", "--sql", sql, *buckets, "--format", "arrow", "-o", str(arrow_file)).returncode == 0
    assert run_cli(api, "query", "--sql", sql, *buckets, "--format", "json", "-o", str(json_file)).returncode == 0
    table = pa.ipc.open_file(arrow_file.read_bytes()).read_all()
    assert table.column_names == ["_bucket", "id", "email", "price"]
    assert table.schema.field("price").type == pa.decimal128(38, 2)
    document = json.loads(json_file.read_text())
    assert document["data"]["columns"] == table.column_names
    assert [[r["_bucket"], r["id"], r["email"], str(r["price"])] for r in table.to_pylist()] == \
        [[b, i, e, "1.50"] for b, i, e, _ in document["data"]["rows"]]
    assert '1.50]' in json_file.read_text()  # the API's exact text


def test_a_failed_job_exits_non_zero_with_its_error(api: Api) -> None:
    result = run_cli(api, "query", "--question", "how many people are there?")
    assert result.returncode == 1
    assert "failed: generation_failed: Could not generate SQL" in result.stderr
    assert result.stdout == ""


def test_bad_sql_and_bad_key_are_reported(api: Api) -> None:
    result = run_cli(api, "query", "--sql", "DELETE FROM person")
    assert result.returncode == 1 and "queryall: error:" in result.stderr and "DELETE" in result.stderr
    result = run_cli(api, "jobs", "--api-key", "wrong")
    assert result.returncode == 1 and "Authentication required" in result.stderr


def test_status_jobs_and_cancel(api: Api, tenants_dir: Path) -> None:
    job_id = api.submit({"sql": "SELECT 1 AS one", "buckets": list(tenant_files(tenants_dir))[:1]})
    api.wait(job_id)
    status = run_cli(api, "status", job_id)
    assert status.returncode == 0 and status.stdout.startswith(f"job {job_id}: completed\n1 databases queried")
    listed = run_cli(api, "jobs", "--limit", "1")
    assert listed.returncode == 0 and job_id in listed.stdout and "completed" in listed.stdout
    assert "more: queryall jobs --cursor " in listed.stderr
    page = json.loads(run_cli(api, "jobs", "--limit", "1", "--json").stdout)
    assert page["jobs"][0]["job_id"] == job_id
    cancel = run_cli(api, "cancel", job_id)
    assert cancel.returncode == 1 and "already completed" in cancel.stderr

    slow = api.submit({"sql": "SELECT count(*) FROM range(300000000) t(i) WHERE hash(i) % 7 = 0",
                       "buckets": list(tenant_files(tenants_dir))[:2]})
    assert run_cli(api, "status", slow).stdout.startswith(f"job {slow}: processing, ")
    cancel = run_cli(api, "cancel", slow)
    assert cancel.returncode == 0 and cancel.stdout == f"job {slow}: cancelled\n"
    assert run_cli(api, "status", slow).stdout == f"job {slow}: cancelled\n"


def test_interrupt_while_waiting_says_how_to_follow_up(api: Api, tenants_dir: Path) -> None:
    sql = "SELECT count(*) FROM range(300000000) t(i) WHERE hash(i) % 7 = 0"
    process = subprocess.Popen([sys.executable, "-m", "queryall_local", "query", "--sql", sql,
                                "--bucket", next(iter(tenant_files(tenants_dir)))],
                               cwd=ROOT, env=cli_env(api), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               # Ctrl-C as on a terminal, even when this run was started in the background
                               # (a shell starts background jobs with SIGINT ignored, and children inherit it).
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stderr is not None
    submitted = process.stderr.readline()
    job_id = re.fullmatch(r"job ([0-9a-f-]{36}) submitted\n", submitted).group(1)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert f"job {job_id} is still running" in stderr and f"queryall cancel {job_id}" in stderr
    assert api.request("DELETE", f"/query-all/jobs/{job_id}").body["data"]["status"] == "cancelled"
