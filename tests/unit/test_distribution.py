"""Inline or distributed plans, the ItemBatcher shape QueryBatch accepts, and the local ItemBatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from queryall.logic.distribution import MIN_BATCH_SIZE, batch_size_for, distribute, planned_batches
from queryall.logic.progress import JOB_PROGRESS_WRITES_PER_SECOND, flush_interval
from queryall.models.workflow import Batch, BatchInput, MapItem, Plan
from queryall_local.moto_compat import _batched_items, _resolve, without_item_batchers

ROOT = Path(__file__).resolve().parents[2]


class FakeItems:
    bucket = "results"

    def __init__(self) -> None:
        self.stored: dict[str, list[MapItem]] = {}

    def put(self, job_id: str, items: list[MapItem]) -> str:
        self.stored[f"jobs/{job_id}/map-items.json"] = items
        return f"jobs/{job_id}/map-items.json"

    def get(self, key: str) -> list[MapItem]:
        return self.stored[key]


def _plan(tenants: int, batch_size: int) -> Plan:
    names = [f"t{i:03d}" for i in range(tenants)]
    starts = range(0, tenants, batch_size)
    batches = [Batch(batch_index=i, buckets=names[s: s + batch_size]) for i, s in enumerate(starts)]
    return Plan(batches=batches, max_concurrency=40, databases_total=tenants + 1, missing={"gone": "No database"})


def _distribute(plan: Plan, items: FakeItems, threshold: int = 10) -> Plan:
    return distribute(plan, "job", threshold=threshold, max_batch_size=100, max_concurrency=40,
                      distributed_max_concurrency=4, items=items)


@pytest.mark.parametrize(("targets", "cap", "slots", "expected"), [
    (1000, 100, 40, 25),    # one wave over the inline Map's 40 slots
    (177, 100, 40, MIN_BATCH_SIZE),  # never below the minimum: a batch has a fixed cost
    (1000, 100, 2, 100),    # the local stack's 2 slots: as large as allowed
    (10_000, 100, 400, 25),  # distributed Map
    (3, 100, 40, MIN_BATCH_SIZE),
    (50, 5, 40, 5),         # the configured maximum wins over the minimum
])
def test_batch_size_spreads_targets_over_the_slots(targets: int, cap: int, slots: int, expected: int) -> None:
    assert batch_size_for(targets, cap, slots) == expected


def test_plan_at_the_threshold_stays_inline_with_batches_for_its_slots() -> None:
    items = FakeItems()
    planned = _distribute(_plan(10, 3), items, threshold=10)
    assert planned.mode == "inline" and items.stored == {}
    assert [len(b.buckets) for b in planned.batches] == [10]  # 10 targets, 40 slots: one batch of the minimum
    assert [b for batch in planned.batches for b in batch.buckets] == [f"t{i:03d}" for i in range(10)]


def test_plan_above_the_threshold_goes_to_s3_and_comes_back_identical() -> None:
    items = FakeItems()
    plan = _plan(41, 3)
    distributed = _distribute(plan, items)
    assert distributed.mode == "distributed" and distributed.batches == []
    assert (distributed.batch_size, distributed.max_concurrency) == (11, 4)  # 41 targets over 4 slots
    assert (distributed.items_bucket, distributed.items_key) == ("results", "jobs/job/map-items.json")
    assert distributed.missing == plan.missing and distributed.databases_total == plan.databases_total
    assert [i.batch_index for i in items.stored[distributed.items_key]] == [0] * 11 + [1] * 11 + [2] * 11 + [3] * 8
    restored = planned_batches(distributed, items)
    assert [(b.batch_index, len(b.buckets)) for b in restored.batches] == [(0, 11), (1, 11), (2, 11), (3, 8)]
    assert [b for batch in restored.batches for b in batch.buckets] == [f"t{i:03d}" for i in range(41)]
    assert planned_batches(plan, items) == plan  # inline plans already hold their batches


def test_batch_input_accepts_the_item_batcher_shape() -> None:
    inline = {"job_id": "j", "sql": "SELECT 1", "limit": 5, "table": None,
              "batch": {"batch_index": 2, "buckets": ["a", "b"]}}
    batched = {"Items": [{"batch_index": 2, "bucket": "a"}, {"batch_index": 2, "bucket": "b"}],
               "BatchInput": {"job_id": "j", "sql": "SELECT 1", "limit": 5, "table": None}}
    assert BatchInput.model_validate(batched) == BatchInput.model_validate(inline)


def test_batch_input_rejects_a_batch_spanning_two_planned_batches() -> None:
    batched = {"Items": [{"batch_index": 0, "bucket": "a"}, {"batch_index": 1, "bucket": "b"}],
               "BatchInput": {"job_id": "j", "sql": "SELECT 1", "limit": 5}}
    with pytest.raises(ValidationError, match="one planned batch"):
        BatchInput.model_validate(batched)


def test_local_stack_batches_items_as_the_item_batcher_would() -> None:
    definition = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True,
        "ItemBatcher": {"MaxItemsPerBatchPath": "$.plan.size", "BatchInput": {"job_id.$": "$.job", "fixed": 1}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}
    stripped = json.loads(without_item_batchers(json.dumps(definition)))
    assert "ItemBatcher" not in stripped["States"]["M"]
    batcher = definition["States"]["M"]["ItemBatcher"]
    batches = _batched_items([1, 2, 3, 4, 5], batcher, {"job": "j1", "plan": {"size": 2}})
    assert batches == [{"Items": [1, 2], "BatchInput": {"job_id": "j1", "fixed": 1}},
                       {"Items": [3, 4], "BatchInput": {"job_id": "j1", "fixed": 1}},
                       {"Items": [5], "BatchInput": {"job_id": "j1", "fixed": 1}}]


@pytest.mark.parametrize(("concurrent", "expected"), [(1, 0.2), (2, 0.2), (10, 0.2), (40, 0.8), (400, 8.0)])
def test_progress_writes_slow_down_as_more_batches_share_the_job_item(concurrent: int, expected: float) -> None:
    assert flush_interval(concurrent) == pytest.approx(expected)
    # Whatever the concurrency, the job's item gets at most this many progress writes a second.
    assert concurrent / flush_interval(concurrent) <= JOB_PROGRESS_WRITES_PER_SECOND


def test_the_widest_map_still_gives_its_batches_an_interval_they_accept() -> None:
    interval = flush_interval(10_000)  # DistributedMapMaxConcurrency's largest value
    assert interval == 60
    batch = {"job_id": "j", "sql": "SELECT 1", "limit": 5, "batch": {"batch_index": 0, "buckets": ["a"]}}
    assert BatchInput.model_validate(batch | {"progress_interval_seconds": interval}).progress_interval_seconds == 60
    with pytest.raises(ValidationError):
        BatchInput.model_validate(batch | {"progress_interval_seconds": 0})


def test_plans_carry_the_progress_interval_of_the_batches_that_run_at_once() -> None:
    items = FakeItems()
    inline = distribute(_plan(1000, 100), "job", threshold=1000, max_batch_size=100, max_concurrency=40,
                        distributed_max_concurrency=400, items=items)
    assert (len(inline.batches), inline.progress_interval_seconds) == (40, pytest.approx(0.8))
    local = distribute(_plan(1000, 100), "job", threshold=1000, max_batch_size=100, max_concurrency=2,
                       distributed_max_concurrency=400, items=items)
    assert local.progress_interval_seconds == pytest.approx(0.2)
    few = distribute(_plan(30, 10), "job", threshold=1000, max_batch_size=100, max_concurrency=40,
                     distributed_max_concurrency=400, items=items)
    assert (len(few.batches), few.progress_interval_seconds) == (3, pytest.approx(0.2))
    wide = distribute(_plan(10_000, 100), "job", threshold=1000, max_batch_size=100, max_concurrency=40,
                      distributed_max_concurrency=400, items=items)
    assert (wide.mode, wide.progress_interval_seconds) == ("distributed", pytest.approx(8.0))


def test_both_maps_of_the_state_machine_hand_the_plan_s_progress_interval_to_query_batch() -> None:
    definition = json.loads((ROOT / "infra" / "statemachine" / "query_all.asl.json").read_text())
    state = {"job_id": "j", "sql": "SELECT 1", "limit": 5, "table": None, "deadline": 1_800_000_000.5,
             "plan": {"progress_interval_seconds": 0.8}}
    selector = dict(definition["States"]["QueryBatches"]["ItemSelector"])
    assert selector.pop("batch.$") == "$$.Map.Item.Value"  # the Map's context: the batch itself
    inline = {**_resolve(selector, state), "batch": {"batch_index": 0, "buckets": ["a"]}}
    batcher = definition["States"]["QueryBatchesDistributed"]["ItemBatcher"]
    [batched] = _batched_items([{"batch_index": 0, "bucket": "a"}], batcher,
                               {**state, "plan": {**state["plan"], "batch_size": 1}})
    assert BatchInput.model_validate(inline).progress_interval_seconds == 0.8
    assert BatchInput.model_validate(inline).deadline == 1_800_000_000.5  # the job's deadline, to both maps
    assert BatchInput.model_validate(batched) == BatchInput.model_validate(inline)
