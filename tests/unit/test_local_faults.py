"""The local stack's fault spec and its Lambda faults: once per batch, either Map's event shape."""

from __future__ import annotations

import json

import pytest

from queryall_local.faults import Faults, FaultSpecError, LambdaFaults


def test_spec_reads_every_kind() -> None:
    faults = Faults.parse(" raise=a, b ;hang=c;corrupt=d;throttle=e;timeout=f;raise=g")
    assert faults.raise_ == {"a", "b", "g"} and faults.hang == {"c"} and faults.corrupt == {"d"}
    assert faults.throttle == {"e"} and faults.timeout == {"f"}
    assert faults.tenants == set("abcdefg")
    assert faults.describe() == "raise 3, hang 1, corrupt 1, throttle 1, timeout 1"


@pytest.mark.parametrize("spec", ["explode=a", "raise", "=a"])
def test_a_bad_spec_is_refused(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        Faults.parse(spec)


def _inline(job_id: str, index: int, buckets: list[str]) -> bytes:
    return json.dumps({"job_id": job_id, "batch": {"batch_index": index, "buckets": buckets}}).encode()


def _distributed(job_id: str, index: int, buckets: list[str]) -> bytes:
    return json.dumps({"Items": [{"batch_index": index, "bucket": b} for b in buckets],
                       "BatchInput": {"job_id": job_id}}).encode()


@pytest.mark.parametrize("event", [_inline, _distributed])
def test_a_batch_fails_once_per_kind_then_runs(event) -> None:
    inject = LambdaFaults(Faults.parse("throttle=e;timeout=f"))
    assert inject("QueryBatchFunction", event("j", 0, ["a", "b"])) is None
    assert json.loads(inject("QueryBatchFunction", event("j", 1, ["e", "f"])))["errorType"] == \
        "Lambda.TooManyRequestsException"
    assert json.loads(inject("QueryBatchFunction", event("j", 1, ["e", "f"])))["errorType"] == "Sandbox.Timedout"
    assert inject("QueryBatchFunction", event("j", 1, ["e", "f"])) is None  # the retry runs
    assert inject("QueryBatchFunction", event("other-job", 1, ["e"])) is not None
    assert inject("AggregateFunction", event("j", 2, ["e"])) is None
