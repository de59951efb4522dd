"""The local gateway's own cost per request: a loop of GET polls against a function that answers at once.

The function behind the route is a stand-in returning a small proxy response, so the figures are the
HTTP server, route matching, the v2 event and the response mapping, nothing else. Each request opens
its own connection (as the `queryall` client's one-off calls do); with ``--keep-alive`` the loop reuses
one connection where the server allows it.

    python bench/gateway.py                 # 2,000 polls, one client; then 4 clients at once
    python bench/gateway.py --requests 500 --clients 8
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra" / "local"))

from queryall_local.gateway import LocalGateway
from queryall_local.template import RouteSpec

_ROUTES = [RouteSpec("GET", "/query-all/jobs/{jobId}", "PollFunction")]
_REPLY = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"status":"processing"}'}


class _Instant:
    def invoke(self, name: str, event: Any) -> Any:
        return _REPLY


def _loop(port: int, count: int, keep_alive: bool, latencies: list[float]) -> None:
    connection: http.client.HTTPConnection | None = None
    for i in range(count):
        started = time.perf_counter()
        if connection is None or not keep_alive:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", f"/query-all/jobs/j-{i}", headers={"x-api-key": "k"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"unexpected status {response.status}")
        if not keep_alive or response.will_close:
            connection.close()
            connection = None
        latencies.append(time.perf_counter() - started)
    if connection is not None:
        connection.close()


def _run(port: int, requests: int, clients: int, keep_alive: bool) -> None:
    latencies: list[float] = []
    per_client = max(1, requests // clients)
    threads = [
        threading.Thread(target=_loop, args=(port, per_client, keep_alive, latencies)) for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"clients={clients} keep_alive={keep_alive} requests={len(latencies)}: "
        f"{len(latencies) / elapsed:,.0f} req/s, latency p50 {statistics.median(ordered) * 1000:.2f} ms, "
        f"p95 {p95 * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keep-alive", action="store_true")
    args = parser.parse_args()
    with LocalGateway(_ROUTES, _Instant()) as gateway:
        _run(gateway.port, 100, 1, args.keep_alive)  # warm-up
        _run(gateway.port, args.requests, 1, args.keep_alive)
        _run(gateway.port, args.requests, args.clients, args.keep_alive)


if __name__ == "__main__":
    main()
