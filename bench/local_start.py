"""How fast the local stack is there for a user: `queryall local serve` to its ready line, and one
`queryall local invoke PollFunction` from start to exit.

Each measurement is a fresh process (as a user runs the command), timed on the wall clock; the
median of the runs is compared with the target (issue 11 item 10: serve ready <= 2.5 s, invoke
PollFunction <= 2 s on this machine). The child's CPU time (user + system, for serve until it is
stopped) is printed beside it: on a shared machine the wall clock grows with the load, CPU time
much less, and the load average is printed so the two can be read together.

    python bench/local_start.py            # 5 runs of each
    python bench/local_start.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVE_TARGET = 2.5
INVOKE_TARGET = 2.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_"))}
    paths = [str(ROOT / "functions"), str(ROOT / "infra" / "local")]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def serve_ready(tenants: Path) -> float:
    """Seconds from spawning `queryall local serve` to its ready line."""
    command = [sys.executable, "-m", "queryall_local", "local", "serve", "--port", "0", "--tenants-dir", str(tenants)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        elapsed = time.perf_counter() - started
        if "ready" not in line:
            raise RuntimeError(f"serve printed {line!r} (exit {process.poll()})")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        return elapsed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def invoke_poll(tenants: Path) -> float:
    """Seconds for one `queryall local invoke PollFunction` on events/poll.json, start to exit."""
    command = [sys.executable, "-m", "queryall_local", "local", "invoke", "PollFunction", "-e",
               str(ROOT / "events" / "poll.json"), "--tenants-dir", str(tenants)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"invoke failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tenants = Path(tmp)
        rows = []
        for name, measure, target in (("serve ready", serve_ready, SERVE_TARGET),
                                      ("invoke PollFunction", invoke_poll, INVOKE_TARGET)):
            times, cpus = [], []
            for _ in range(args.runs):
                cpu = _cpu()
                times.append(measure(tenants))
                cpus.append(_cpu() - cpu)
            median = statistics.median(times)
            rows.append((name, median, min(times), max(times), statistics.median(cpus), target, median <= target))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, {args.runs} runs each")
    print(f"{'measurement':<22}{'median':>9}{'min':>8}{'max':>8}{'cpu':>8}{'target':>8}  met")
    for name, median, low, high, cpu, target, met in rows:
        print(f"{name:<22}{median:>8.2f}s{low:>7.2f}s{high:>7.2f}s{cpu:>7.2f}s{target:>7.1f}s  "
              f"{'yes' if met else 'no'}")
    return 0 if all(row[-1] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
