"""Events out: every job state change reaches EventBridge (moto's, on the local stack), at least once.

A rule on the stack's bus delivers the "Query-All Job State Change" events to an SQS queue this test
reads, as a deployed consumer would; `queryall local serve --forward-events` is run as a user runs it."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar
from unittest import mock

import jsonschema
import pytest

from tests.conftest import API_KEY, ROOT, Api

pytestmark = pytest.mark.timeout(180)

SCHEMA = json.loads((ROOT / "docs" / "events" / "job-state-change.schema.json").read_text())
DETAIL_FIELDS = {"job_id", "owner", "currentState", "previousState", "sequenceNumber", "submitted_at", "finished_at",
                 "sql", "meta", "error_code", "error_message", "result"}
META_FIELDS = ("databases_queried", "databases_skipped", "databases_errored", "total_rows", "truncated",
               "execution_time_seconds")
SLOW_SQL = "SELECT count(*) AS n FROM range(100000000) t(i) WHERE hash(i) % 1000 = 0"


class EventQueue:
    """An SQS queue receiving the stack's job state-change events through an EventBridge rule."""

    def __init__(self, local_stack) -> None:
        self.sqs = local_stack.client("sqs")
        name = f"job-events-{uuid.uuid4().hex[:8]}"
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = local_stack.client("events")
        bus = local_stack.spec.parameters["EventBusName"]
        events.put_rule(Name=name, EventBusName=bus, State="ENABLED", EventPattern=json.dumps(
            {"source": ["queryall"], "detail-type": ["Query-All Job State Change"]}))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "test", "Arn": arn}])
        self.received: list[dict] = []

    def until_final(self, job_ids: list[str], timeout: float = 60) -> dict[str, list[dict]]:
        """Every event of each job until each has a final one, deduplicated on job_id + sequenceNumber."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            found = self.of(job_ids)
            if all(any(e["detail"]["currentState"] != "processing" for e in found[j]) for j in job_ids):
                return found
            time.sleep(0.05)
        raise AssertionError(f"no final event for some of {job_ids} after {timeout} s: {self.received}")

    def drain(self) -> None:
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                self.received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def of(self, job_ids: list[str]) -> dict[str, list[dict]]:
        unique: dict[tuple[str, int], dict] = {}
        for event in self.received:
            unique.setdefault((event["detail"]["job_id"], event["detail"]["sequenceNumber"]), event)
        return {job_id: sorted((e for (j, _), e in unique.items() if j == job_id),
                               key=lambda e: e["detail"]["sequenceNumber"]) for job_id in job_ids}


@pytest.fixture(scope="module")
def events(local_stack) -> EventQueue:
    return EventQueue(local_stack)


def job_item(local_stack, job_id: str) -> dict:
    item = local_stack.client("dynamodb").get_item(
        TableName=local_stack.dynamodb_table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True)["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def check_envelope(event: dict) -> None:
    jsonschema.validate(event, SCHEMA)
    assert (event["source"], event["detail-type"]) == ("queryall", "Query-All Job State Change")
    assert set(event["detail"]) == DETAIL_FIELDS


def check_history(local_stack, job_id: str, found: list[dict], final: str) -> dict:
    """The job's two events: created as processing (1), then its final state (2); returns the final one."""
    for event in found:
        check_envelope(event)
    created, finished = (event["detail"] for event in found)
    item = job_item(local_stack, job_id)
    common = {"job_id": job_id, "owner": item["owner"], "submitted_at": item["created_at"]}
    assert created == common | {"currentState": "processing", "previousState": None, "sequenceNumber": 1,
                                "finished_at": None, "sql": created["sql"], "meta": None, "error_code": None,
                                "error_message": None, "result": None}
    assert {k: finished[k] for k in common} == common
    assert (finished["currentState"], finished["previousState"], finished["sequenceNumber"]) == (final, "processing", 2)
    assert finished["finished_at"] == item["finished_at"]
    return finished


def test_completed_failed_and_cancelled_jobs_each_put_their_state_changes(api: Api, local_stack,
                                                                         events: EventQueue) -> None:
    long_sql = "SELECT 1 AS one WHERE '" + "x" * 600 + "' <> ''"
    completed = api.submit({"sql": long_sql})
    failed = api.submit({"question": "how many people are there?"})  # no SQL generator: generation_failed
    cancelled = api.submit({"sql": SLOW_SQL})
    assert api.request("DELETE", f"/query-all/jobs/{cancelled}").status == 200
    polled = {job_id: api.wait(job_id) for job_id in (completed, failed)}

    found = events.until_final([completed, failed, cancelled])

    done = check_history(local_stack, completed, found[completed], "completed")
    assert done["sql"] == long_sql[:500]
    assert done["meta"] == {name: type(done["meta"][name])(polled[completed]["meta"][name]) for name in META_FIELDS}
    assert done["meta"]["databases_queried"] > 0 and done["meta"]["total_rows"] == done["meta"]["databases_queried"]
    assert (done["error_code"], done["error_message"]) == (None, None)
    assert done["result"]["bucket"] == local_stack.results_bucket_name
    assert sorted(done["result"]["keys"]) == ["arrow", "csv", "json", "parquet"]
    s3 = local_stack.client("s3")
    for key in done["result"]["keys"].values():
        assert key.startswith(f"jobs/{completed}/")
        s3.head_object(Bucket=done["result"]["bucket"], Key=key)  # the result is where the event says
    assert '"rows"' not in json.dumps(done) and '"columns"' not in json.dumps(done)

    failure = check_history(local_stack, failed, found[failed], "failed")
    assert (failure["error_code"], failure["error_message"]) == (polled[failed]["data"]["error_code"],
                                                                  polled[failed]["data"]["error_message"])
    assert failure["error_code"] == "generation_failed"
    assert (failure["meta"], failure["result"]) == (None, None)

    stopped = check_history(local_stack, cancelled, found[cancelled], "cancelled")
    assert (stopped["sql"], stopped["error_code"], stopped["meta"], stopped["result"]) == (SLOW_SQL, None, None, None)


def test_a_job_finished_while_eventbridge_fails_gets_its_event_once_it_recovers(api: Api, local_stack,
                                                                               events: EventQueue) -> None:
    from moto.events.models import EventsBackend

    def unavailable(self, entries):
        raise RuntimeError("EventBridge is down")

    with mock.patch.object(EventsBackend, "put_events", unavailable):
        job_id = api.submit({"sql": "SELECT 2 AS two"})
        api.wait(job_id)  # the job item is written, completed
        time.sleep(1.0)  # the consumer keeps failing on it meanwhile
        events.drain()
        assert events.of([job_id])[job_id] == []
    found = events.until_final([job_id], timeout=30)
    check_history(local_stack, job_id, found[job_id], "completed")


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers the first POST 500, then 200; keeps every body it took."""

    posts = 0
    taken: ClassVar[list[dict]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Receiver.lock:
            Receiver.posts += 1
            ok = Receiver.posts > 1
            if ok:
                Receiver.taken.append(json.loads(body))
        self.send_response(200 if ok else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_serve_logs_every_event_and_forwards_it_until_the_receiver_takes_it(tmp_path: Path) -> None:
    from queryall_local.seed import seed_tenants

    tenants_dir = tmp_path / "tenants"
    tenants_dir.mkdir()
    seed_tenants(tenants_dir, 3)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERYALL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "queryall_local", "local", "serve", "--port", "0", "--tenants-dir", str(tenants_dir),
         "--api-key", API_KEY, "--forward-events", f"http://127.0.0.1:{server.server_address[1]}/events"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = process.stdout.readline()
        url = re.search(r"ready at (\S+)", ready)
        assert url, ready + process.stderr.read()
        served = Api(url.group(1), API_KEY)
        job_id = served.submit({"sql": "SELECT 3 AS three"})
        served.wait(job_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(Receiver.taken) < 2:
            time.sleep(0.05)
        assert [(e["detail"]["job_id"], e["detail"]["currentState"]) for e in Receiver.taken] == [
            (job_id, "processing"), (job_id, "completed")]
        assert Receiver.posts == 3  # the first event once refused, then taken; the second taken at once
        for event in Receiver.taken:
            check_envelope(event)
    finally:
        process.terminate()
        _, log = process.communicate(timeout=30)
        server.shutdown()
    logged = [json.loads(line.split(" event ", 1)[1]) for line in log.splitlines() if "event_tap: event {" in line]
    assert [(e["detail"]["job_id"], e["detail"]["sequenceNumber"]) for e in logged] == [(job_id, 1), (job_id, 2)]
    assert logged == Receiver.taken


def test_a_record_that_fails_is_reported_alone_and_the_others_are_put(local_stack, events: EventQueue) -> None:
    good, bad = (json.loads((ROOT / "events" / "job_events_stream.json").read_text())["Records"][0] for _ in "ab")
    good_id, bad_id = str(uuid.uuid4()), str(uuid.uuid4())
    for record, job_id, sequence in ((good, good_id, "1"), (bad, bad_id, "2")):
        record["dynamodb"]["SequenceNumber"] = sequence
        for image in ("OldImage", "NewImage"):
            record["dynamodb"][image]["job_id"] = {"S": job_id}
    bad["dynamodb"]["NewImage"]["status"] = {"S": "exploded"}  # no status a job can have: no event can say it

    answer = local_stack.runtime.invoke("JobEventsFunction", {"Records": [bad, good]})

    assert answer == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    found = events.until_final([good_id], timeout=10)[good_id]
    assert [(e["detail"]["currentState"], e["detail"]["error_code"]) for e in found] == [("failed", "query_failed")]
    assert events.of([bad_id])[bad_id] == []


def test_a_job_the_watchdog_fails_puts_its_failure(api: Api, local_stack, events: EventQueue) -> None:
    job_id = api.submit({"sql": SLOW_SQL})
    deadline = time.monotonic() + 30
    while api.request("GET", f"/query-all/jobs/{job_id}").body["data"]["progress"]["databases_total"] is None:
        assert time.monotonic() < deadline, "job never planned"  # moto stops only an execution under way
        time.sleep(0.05)
    arn = local_stack.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + job_id
    local_stack.client("stepfunctions").stop_execution(executionArn=arn, error="Ops", cause="stopped by hand")

    found = events.until_final([job_id])

    failure = check_history(local_stack, job_id, found[job_id], "failed")
    assert failure["error_code"] == "execution_aborted"
    assert failure["error_message"] == job_item(local_stack, job_id)["error_message"]
