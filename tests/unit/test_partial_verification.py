"""A batch's partials against its summary: a tenant whose rows do not number what was recorded is an
error and none of its rows are merged; the others are untouched."""

from __future__ import annotations

import pyarrow as pa

from queryall.logic.partial_verification import verified_partials
from queryall.models.workflow import TenantOutcome


def _table(buckets: list[str]) -> pa.Table:
    return pa.table({"_bucket": pa.array(buckets, pa.string()), "n": pa.array(range(len(buckets)), pa.int64())})


def test_matching_counts_pass_through_unchanged() -> None:
    outcomes = [TenantOutcome(bucket="a", status="ok", rows=2), TenantOutcome(bucket="b", status="ok", rows=0),
                TenantOutcome(bucket="c", status="error", message="boom"),
                TenantOutcome(bucket="d", status="skipped", message="no table")]
    tables = [_table(["a"]), _table(["a"])]
    checked, kept = verified_partials(outcomes, tables)
    assert checked == outcomes and kept == tables


def test_a_tenant_with_more_or_fewer_rows_than_recorded_is_reported_and_left_out() -> None:
    outcomes = [TenantOutcome(bucket="a", status="ok", rows=1), TenantOutcome(bucket="b", status="ok", rows=3),
                TenantOutcome(bucket="c", status="ok", rows=2)]
    tables = [_table(["a", "a", "b", "c"]), _table(["c"])]  # a doubled, b cut short, c fine
    checked, kept = verified_partials(outcomes, tables)
    assert [(o.bucket, o.status) for o in checked] == [("a", "error"), ("b", "error"), ("c", "ok")]
    assert checked[0].message == "Partial result failed verification: 1 rows recorded, 2 in the partial; not merged"
    assert checked[1].message == "Partial result failed verification: 3 rows recorded, 1 in the partial; not merged"
    assert [t.column("_bucket").to_pylist() for t in kept] == [["c"], ["c"]]


def test_rows_of_a_tenant_not_reported_queried_are_left_out() -> None:
    outcomes = [TenantOutcome(bucket="a", status="ok", rows=1), TenantOutcome(bucket="x", status="error", message="m")]
    checked, kept = verified_partials(outcomes, [_table(["a", "x", "ghost"])])
    assert checked == outcomes
    assert kept[0].column("_bucket").to_pylist() == ["a"]
