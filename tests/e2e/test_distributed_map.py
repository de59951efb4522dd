"""Above DistributedMapThreshold targets the workflow runs a distributed Map (targets read from S3, an
ItemBatcher grouping them per QueryBatch, child executions); the combined result must not change."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.timeout(180)

QUERIES = [
    {"sql": "SELECT count(*) AS total FROM person"},
    {"sql": "SELECT kind, properties.source AS source, count(*) AS events FROM event GROUP BY ALL ORDER BY ALL",
     "limit": 7},
]


def _threshold(monkeypatch: pytest.MonkeyPatch, value: int) -> None:
    from queryall.settings import reset_caches

    monkeypatch.setenv("DISTRIBUTED_MAP_THRESHOLD", str(value))
    reset_caches()


@pytest.fixture
def threshold(monkeypatch: pytest.MonkeyPatch):
    """Sets DistributedMapThreshold for the jobs submitted next; the stack's own value comes back after."""
    from queryall.settings import reset_caches

    yield lambda value: _threshold(monkeypatch, value)
    monkeypatch.undo()
    reset_caches()


def _map_states(local_stack, job_id: str) -> set[str]:
    """The Map states the job's execution entered (its execution is named after the job)."""
    sfn = local_stack.client("stepfunctions")
    arn = local_stack.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + job_id
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return {e["stateEnteredEventDetails"]["name"] for e in events
            if e["type"] == "MapStateEntered"}


def _comparable(body: dict, job_id: str) -> dict:
    """The response without what differs per job: its timing and the links naming it (a full-result
    link is replaced by the file it points to)."""
    meta = {}
    for key, value in body["meta"].items():
        if isinstance(value, str) and job_id in value:
            with urllib.request.urlopen(value, timeout=30) as response:  # a presigned URL to the local S3
                meta[key] = response.read()
        elif key != "execution_time_seconds":
            meta[key] = value
    return {"columns": body["data"]["columns"], "rows": body["data"]["rows"], "meta": meta}


@pytest.mark.parametrize("query", QUERIES, ids=["count", "group-by"])
def test_distributed_map_gives_the_inline_result(api: Api, local_stack, threshold, query: dict) -> None:
    threshold(10)
    distributed_job = api.submit(query)
    distributed_body = api.wait(distributed_job)
    assert _map_states(local_stack, distributed_job) == {"QueryBatchesDistributed"}

    threshold(1_000_000)
    inline_job = api.submit(query)
    inline_body = api.wait(inline_job)
    assert _map_states(local_stack, inline_job) == {"QueryBatches"}

    assert distributed_body["meta"]["databases_queried"] > 25  # several batches, so several child executions
    assert _comparable(distributed_body, distributed_job) == _comparable(inline_body, inline_job)


def test_distributed_plan_keeps_bucket_names_out_of_the_state(api: Api, local_stack, threshold) -> None:
    threshold(10)
    job_id = api.submit({"sql": "SELECT 1 AS one"})
    api.wait(job_id)
    sfn = local_stack.client("stepfunctions")
    arn = local_stack.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + job_id
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    planned = next(e["stateExitedEventDetails"]["output"] for e in events
                   if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "PlanTargets")
    plan = json.loads(planned)["plan"]
    assert plan["mode"] == "distributed" and plan["batches"] == [] and plan["databases_total"] > 25
    assert "acme" not in planned  # the targets are in S3 (map-items.json), not in the execution state
    items = local_stack.client("s3").get_object(Bucket=plan["items_bucket"], Key=plan["items_key"])["Body"].read()
    assert [item["bucket"] for item in json.loads(items)][:1] == ["acme"]


def test_the_local_stack_runs_the_template_s_express_children(local_stack) -> None:
    # moto's parser reads EXPRESS children as STANDARD (moto_compat's sfn-express-children); the state
    # machine the stack created is the template's, Express children and their 280 s task timeout included.
    sfn = local_stack.client("stepfunctions")
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=local_stack.state_machine_arn)["definition"])
    processor = definition["States"]["QueryBatchesDistributed"]["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    task = processor["States"][processor["StartAt"]]
    assert task["TimeoutSeconds"] < 300  # an Express child ends at 300 s: the task times out first, caught
    assert [c["ErrorEquals"] for c in task["Catch"]] == [["States.ALL"]]


def test_cancelling_a_distributed_job_stops_its_child_batches(api: Api, local_stack, threshold, tenants_dir) -> None:
    from tests.e2e.test_wait_progress_cancel import buckets, job_item, slow_sql

    threshold(2)
    targets = buckets(tenants_dir, 20)  # two batches of 10 (a batch holds at least 10): two child executions
    submitted = time.monotonic()
    job_id = api.submit({"sql": slow_sql(60_000_000), "buckets": targets})
    while job_item(local_stack, job_id).get("databases_done", 0) in (0, "0"):  # really running
        assert time.monotonic() - submitted < 60
        time.sleep(0.05)
    assert _map_states(local_stack, job_id) == {"QueryBatchesDistributed"}
    cancelled = api.request("DELETE", f"/query-all/jobs/{job_id}")
    assert cancelled.status == 200 and cancelled.body["data"]["status"] == "cancelled"

    # Express children are not stopped with their parent on AWS: each batch stops itself at its next
    # progress update, when it sees the job cancelled. Then the count of done tenants stops moving.
    done = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done.append(int(job_item(local_stack, job_id).get("databases_done", 0)))
        if len(done) > 20 and done[-1] == done[-20]:
            break
        time.sleep(0.25)
    assert done[-1] < len(targets)
    time.sleep(2)
    item = job_item(local_stack, job_id)
    assert item["status"] == "cancelled" and int(item["databases_done"]) == done[-1]
    assert api.request("GET", f"/query-all/jobs/{job_id}").body == {"data": {"job_id": job_id,
                                                                             "status": "cancelled"}}
