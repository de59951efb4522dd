"""A bounded run of bench/load.py against the session's local stack: a few callers submitting at once
while others poll; every job ends, none is lost, and every response keeps the contract (no 5xx, every
error in the envelope). The latency target is for `make bench-load` (50 submitters, 500 pollers)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import API_KEY, ROOT

pytestmark = pytest.mark.timeout(300)


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_concurrent_submitters_and_pollers_lose_nothing_and_keep_the_contract(local_stack) -> None:
    load = _load_bench()
    report = load.run_load(local_stack.url, API_KEY, submitters=8, pollers=24, poll_interval=0.2,
                           sql="SELECT count(*) AS people FROM person", deadline_seconds=180)
    summary = load.describe(report, 8, 24, latency_target=False)
    assert len(report.submitted) == 8, summary
    assert report.lost == [] and report.stuck == [], summary
    assert [s for s in report.samples if s.status >= 500] == [], summary
    assert report.violations == [], summary
    assert set(report.ended.values()) == {"completed"}, summary
    assert report.latencies("poll") and report.latencies("wait"), summary
