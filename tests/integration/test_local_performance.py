"""The local stack's performance machinery: in-process calls to moto, and one workflow Lambda per core."""

from __future__ import annotations

import threading
import time

import boto3
import pytest


def test_sdk_calls_in_the_stack_process_reach_moto_without_a_socket(local_stack) -> None:
    dispatch = local_stack.moto._dispatch
    assert dispatch is not None
    dispatch._apps.clear()
    s3 = boto3.client("s3")  # the default session, as handlers use it (AWS_ENDPOINT_URL: the moto server)
    s3.put_object(Bucket=local_stack.results_bucket_name, Key="jobs/perf-test/object.bin", Body=b"\x00\xffdata")
    body = s3.get_object(Bucket=local_stack.results_bucket_name, Key="jobs/perf-test/object.bin")["Body"].read()
    assert body == b"\x00\xffdata"
    assert {"before-send.s3.PutObject", "before-send.s3.GetObject"} <= set(dispatch._apps)  # answered in-process
    # moto's error responses come back as the service's errors.
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=local_stack.results_bucket_name, Key="jobs/perf-test/missing")


def test_workflow_invocations_queue_for_one_slot_per_core(local_stack, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = local_stack.runtime
    running, peak, lock = 0, 0, threading.Lock()

    invoke_raw = runtime.invoke_raw

    def slow_invoke_raw(name: str, payload: bytes) -> tuple[bytes, None]:
        nonlocal running, peak
        if name != "FailJobFunction":  # the stack's own pollers (job events, queues) invoke meanwhile
            return invoke_raw(name, payload)
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.1)
        with lock:
            running -= 1
        return b"{}", None

    monkeypatch.setattr(runtime, "invoke_raw", slow_invoke_raw)
    client = boto3.client("lambda")
    calls = [threading.Thread(target=client.invoke, kwargs={"FunctionName": "FailJobFunction", "Payload": b"{}"})
             for _ in range(runtime.max_concurrency + 3)]
    for call in calls:
        call.start()
    for call in calls:
        call.join(timeout=30)
    assert peak == runtime.max_concurrency  # Step Functions' Map iterations beyond the cores wait

    # A handler invoking another (submit -> SqlGuard) takes no slot, so it can never wait on itself.
    for _ in range(runtime.max_concurrency):  # every slot taken
        runtime._slots.acquire()
    runtime._in_handler.depth = 1
    try:
        peak = 0
        client.invoke(FunctionName="FailJobFunction", Payload=b"{}")
    finally:
        runtime._in_handler.depth = 0
        for _ in range(runtime.max_concurrency):
            runtime._slots.release()
    assert peak == 1
