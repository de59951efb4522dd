"""``queryall query|jobs|status|cancel``: the queryall API from a terminal (or a script).

Registered as top-level commands of the ``queryall`` console script next to ``queryall local``.
Data goes to stdout (or ``--output``), everything else (progress, summaries, errors) to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_API_URL = "http://127.0.0.1:3000"
DEFAULT_API_KEY = "local-dev-key"  # what `queryall local serve` accepts unless told otherwise
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# How long one wait request is held: short on a terminal so the bar moves, longer otherwise (fewer lines).
TERMINAL_WAIT_SECONDS = 1.0
PLAIN_WAIT_SECONDS = 10.0
MAX_ERRORS_SHOWN = 10


def add_commands(subparsers: Any) -> None:
    """Add query, jobs, status and cancel to the ``queryall`` parser (rich and httpx load only when run)."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--api-url", default=None,
                            help=f"queryall API (default: $QUERYALL_API_URL or {DEFAULT_API_URL})")
    connection.add_argument("--api-key", default=None,
                            help=f"X-API-Key (default: $QUERYALL_API_KEY or {DEFAULT_API_KEY})")

    query = subparsers.add_parser("query", parents=[connection],
                                  help="run one query on every tenant database, follow it, print the result")
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql", help="one read-only SELECT")
    what.add_argument("--question", help="a natural-language question")
    query.add_argument("--bucket", action="append", dest="buckets", metavar="BUCKET",
                       help="only this tenant (repeat for several; default: every tenant)")
    query.add_argument("--limit", type=int, help="rows per database (default: the API's, 1000)")
    query.add_argument("--table", help="skip databases that lack this table")
    query.add_argument("--format", choices=("table", "json", "csv", "arrow"), default="table",
                       help="table (default), json (the API's result document), csv, arrow (Arrow IPC file)")
    query.add_argument("-o", "--output", type=Path, help="write the result to this file instead of stdout")
    query.add_argument("--show-sql", action="store_true",
                       help="with --question: print the SQL it would run (POST /query-all/sql) and run nothing")
    query.set_defaults(func=_command(_query))

    jobs = subparsers.add_parser("jobs", parents=[connection], help="list your jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20, help="jobs per page (1-100, default 20)")
    jobs.add_argument("--cursor", help="the cursor printed after the previous page")
    jobs.add_argument("--json", action="store_true", help="print the API's JSON page")
    jobs.set_defaults(func=_command(_jobs))

    status = subparsers.add_parser("status", parents=[connection], help="show one job's status or result summary")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true", help="print the API's JSON response")
    status.set_defaults(func=_command(_status))

    cancel = subparsers.add_parser("cancel", parents=[connection], help="cancel a running job")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=_command(_cancel))

    from .keys_cli import add_keys_command

    add_keys_command(subparsers, connection, _command)


# --------------------------------------------------------------------------------------------
# plumbing


def _command(run: Callable[..., int]) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        from rich.console import Console

        from .api import ApiError, QueryAllClient

        out, err = Console(highlight=False), Console(stderr=True, highlight=False)
        url = args.api_url or os.environ.get("QUERYALL_API_URL") or DEFAULT_API_URL
        key = args.api_key or os.environ.get("QUERYALL_API_KEY") or DEFAULT_API_KEY
        try:
            with QueryAllClient(url, key) as client:
                return run(client, args, out, err)
        except ApiError as error:
            _say(err, f"queryall: error: {error.message}")
            return EXIT_FAILED
        except OSError as error:  # --output could not be written
            _say(err, f"queryall: error: {error}")
            return EXIT_FAILED

    return command


def _say(console: Any, text: str) -> None:
    # Plain text: no markup ([...] in SQL or messages stays as is), no highlighting, no wrapping.
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _wide(out: Any) -> Any:
    """stdout for a table: the terminal as it is; anything else as wide as the table needs, never 80 columns."""
    from rich.console import Console

    return out if out.is_terminal else Console(width=100_000, highlight=False)


def _write_text(path: Path | None, text: str) -> None:
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------
# queryall query


def _query(client: Any, args: argparse.Namespace, out: Any, err: Any) -> int:
    if args.format == "arrow" and args.output is None and out.is_terminal:
        _say(err, "queryall: error: --format arrow writes a binary file: give --output FILE (or pipe it)")
        return EXIT_USAGE
    if args.show_sql:
        return _show_sql(client, args)
    request = {"sql": args.sql, "question": args.question, "buckets": args.buckets, "limit": args.limit,
               "table": args.table}
    job_id = client.submit({name: value for name, value in request.items() if value is not None})
    _say(err, f"job {job_id} submitted")
    entry = _follow(client, job_id, err)
    if entry is None:
        return EXIT_INTERRUPTED
    if entry["status"] == "failed":
        data = entry["data"]
        _say(err, f"queryall: job {job_id} failed: {data['error_code']}: {data['error_message']}")
        return EXIT_FAILED
    if entry["status"] == "cancelled":
        _say(err, f"queryall: job {job_id} was cancelled")
        return EXIT_FAILED
    data = entry["data"]
    if data.get("sql"):  # a question: the SQL generated from it, before the result
        _say(err, f"SQL: {data['sql']}")
    if entry["meta"].get("truncated") and args.format != "json":
        data = _all_rows(client, job_id, data, entry["meta"].get("next_cursor"), err)
    _write_result(client, job_id, data, args, out)
    _summarize(err, entry["meta"])
    return EXIT_OK


def _show_sql(client: Any, args: argparse.Namespace) -> int:
    """The SQL alone, on stdout (or --output): generated and checked for a question, never run."""
    if args.question is None:
        sql = args.sql
    else:
        request = {"question": args.question, "buckets": args.buckets, "table": args.table}
        sql = client.preview_sql({name: value for name, value in request.items() if value is not None})["sql"]
    _write_text(args.output, sql + "\n")
    return EXIT_OK


def _follow(client: Any, job_id: str, err: Any) -> dict[str, Any] | None:
    """Wait (through the wait endpoint) until the job finished, showing its progress; None if interrupted."""
    from .api import ApiError
    from .progress import display_for

    display = display_for(err, job_id)
    hold = TERMINAL_WAIT_SECONDS if err.is_terminal else PLAIN_WAIT_SECONDS
    try:
        while True:
            data = client.wait([job_id], hold)
            if data["jobs"]:
                entry = data["jobs"][0]
                if entry["status"] == "completed":
                    meta = entry["meta"]
                    done = meta["databases_queried"] + meta["databases_skipped"] + meta["databases_errored"]
                    display.update({"databases_total": done, "databases_done": done,
                                    "databases_errored": meta["databases_errored"],
                                    "rows_so_far": meta["total_rows"]})
                return entry
            if job_id in data["unknown_job_ids"]:
                raise ApiError(404, "not_found", f"Job not found: {job_id}")
            display.update(data["progress"].get(job_id))
    except KeyboardInterrupt:
        display.close()
        _interrupted(client, job_id, err)
        return None
    finally:
        display.close()


def _interrupted(client: Any, job_id: str, err: Any) -> None:
    from rich.prompt import Confirm

    from .api import ApiError

    _say(err, f"Interrupted: job {job_id} is still running.")
    if err.is_terminal and sys.stdin.isatty():
        try:
            cancel = Confirm.ask(f"Cancel job {job_id}?", console=err, default=False)
        except (KeyboardInterrupt, EOFError):
            cancel = False
        if cancel:
            try:
                client.cancel(job_id)
                _say(err, f"job {job_id} cancelled")
                return
            except ApiError as error:
                _say(err, f"could not cancel it: {error.message}")
    _say(err, f"Check it with `queryall status {job_id}`, cancel it with `queryall cancel {job_id}`.")


def _all_rows(client: Any, job_id: str, data: dict[str, Any], cursor: str | None, err: Any) -> dict[str, Any]:
    """The rows poll could not hold, fetched page by page from the full result."""
    rows = list(data["rows"])
    while cursor:
        page = client.results_page(job_id, cursor)
        rows.extend(page["data"]["rows"])
        cursor = page["meta"].get("next_cursor")
    _say(err, f"fetched all {len(rows):,} rows through the results pages")
    return {**data, "rows": rows}


def _write_result(client: Any, job_id: str, data: dict[str, Any], args: argparse.Namespace, out: Any) -> None:
    from rich.console import Console

    from .output import arrow_bytes, render_table, write_csv

    columns, rows = data["columns"], data["rows"]
    if args.format == "json":
        _write_text(args.output, client.job_text(job_id) + "\n")  # the API's own text: exact numbers
    elif args.format == "csv":
        buffer = io.StringIO()
        write_csv(buffer, columns, rows)
        _write_text(args.output, buffer.getvalue())
    elif args.format == "arrow":
        payload = arrow_bytes(columns, rows)
        if args.output is None:
            sys.stdout.buffer.write(payload)
            sys.stdout.flush()
        else:
            args.output.write_bytes(payload)
    elif args.output is not None:
        with args.output.open("w", encoding="utf-8") as stream:
            render_table(Console(file=stream, width=100_000, highlight=False), columns, rows)
    else:
        render_table(_wide(out), columns, rows)


def _summarize(console: Any, meta: dict[str, Any]) -> None:
    _say(console, f"{meta['databases_queried']} databases queried, {meta['databases_skipped']} skipped, "
                  f"{meta['databases_errored']} errored; {meta['total_rows']:,} rows in "
                  f"{meta['execution_time_seconds']} s")
    errors = list(meta.get("errors", {}).items())
    for bucket, message in errors[:MAX_ERRORS_SHOWN]:
        _say(console, f"  {bucket}: {message}")
    if len(errors) > MAX_ERRORS_SHOWN:
        _say(console, f"  … and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    if meta.get("truncated"):
        _say(console, f"note: the job's own response held {meta['returned_rows']:,} of {meta['total_rows']:,} rows; "
                      "--format csv, arrow and table fetch the rest page by page")


# --------------------------------------------------------------------------------------------
# queryall jobs | status | cancel


def _jobs(client: Any, args: argparse.Namespace, out: Any, err: Any) -> int:
    from rich.table import Table

    from .progress import describe_progress

    page = client.jobs(args.limit, args.cursor)
    if args.json:
        _write_text(None, json.dumps(page, default=str) + "\n")
        return EXIT_OK
    if not page["jobs"]:
        _say(err, "no jobs")
    else:
        table = Table("job", "status", "created", "finished", "progress", "request", header_style="bold")
        for job in page["jobs"]:
            request = job["request"]
            text = request.get("sql") or request.get("question") or ""
            table.add_row(job["job_id"], job["status"], job["created_at"], job.get("finished_at") or "",
                          describe_progress(job["progress"]) if job.get("progress") else "",
                          text if len(text) <= 60 else text[:59] + "…")
        _wide(out).print(table)
    if page.get("next_cursor"):
        _say(err, f"more: queryall jobs --cursor {page['next_cursor']}")
    return EXIT_OK


def _status(client: Any, args: argparse.Namespace, out: Any, err: Any) -> int:
    from .api import parse_json
    from .progress import describe_progress

    text = client.job_text(args.job_id)
    if args.json:
        _write_text(None, text + "\n")
        return EXIT_OK
    body = parse_json(text)
    data = body["data"]
    if "columns" in data:
        _say(out, f"job {args.job_id}: completed")
        if data.get("sql"):
            _say(out, f"SQL: {data['sql']}")
        _summarize(out, body["meta"])
    elif data["status"] == "processing":
        _say(out, f"job {args.job_id}: processing, {describe_progress(data['progress'])}")
    elif data["status"] == "failed":
        _say(out, f"job {args.job_id}: failed: {data['error_code']}: {data['error_message']}")
    else:
        _say(out, f"job {args.job_id}: {data['status']}")
    return EXIT_OK


def _cancel(client: Any, args: argparse.Namespace, out: Any, err: Any) -> int:
    data = client.cancel(args.job_id)
    _say(out, f"job {args.job_id}: {data['status']}")
    return EXIT_OK
