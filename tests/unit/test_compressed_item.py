"""The completed job item: compressed rows that always fit, and always decode to a prefix of the result."""

from __future__ import annotations

import bz2
import json
import math
import os
import random
import string

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queryall.logic.aggregation import ROWS_ATTRIBUTE, CombinedResult, _item_without_rows, completed_item
from queryall.logic.item_fit import ITEM_BUDGET, fit_compressed_rows, item_size
from queryall.logic.json_rows import table_to_json_rows
from queryall.logic.paging import decode_cursor
from queryall.logic.polling import job_response_body
from queryall.logic.response_size import escaped_lengths, escaped_size
from queryall.models.job import Job, JobRequest, JobStatus
from queryall.models.result_format import ResultFormat
from queryall.models.workflow import TenantOutcome

JOB_ID = "503a73be-9119-43ba-8e30-4f278f978d49"
# Any unicode a result can hold (no surrogates: DuckDB text is valid UTF-8), control characters included.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


def _job() -> Job:
    return Job(job_id=JOB_ID, status=JobStatus.PROCESSING, owner="key:x", created_at="2026-01-01T00:00:00.000Z",
               submitted_at=1_700_000_000.123, expires_at=1_700_003_600,
               request=JobRequest(sql="SELECT 1", limit=1000))


# Column types with value strategies; nested ones hold unicode and NULLs at every level.
COLUMN_TYPES = [
    (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    (pa.string(), TEXT),
    (pa.bool_(), st.booleans()),
    (pa.binary(), st.binary(max_size=40)),
    (pa.decimal128(20, 4), st.decimals(min_value=-(10**15), max_value=10**15, places=4, allow_nan=False)),
    (pa.list_(pa.string()), st.lists(st.none() | TEXT, max_size=4)),
    (pa.struct([("a", pa.string()), ("b", pa.int32())]),
     st.fixed_dictionaries({"a": st.none() | TEXT, "b": st.none() | st.integers(-(2**31), 2**31 - 1)})),
    # DuckDB maps have unique keys.
    (pa.map_(pa.string(), pa.float64()),
     st.dictionaries(TEXT, st.none() | st.floats(), max_size=3).map(lambda d: list(d.items()))),
]


@st.composite
def combined_results(draw: st.DrawFn) -> CombinedResult:
    rows = draw(st.integers(0, 120))
    kinds = draw(st.lists(st.sampled_from(range(len(COLUMN_TYPES))), min_size=0, max_size=5))
    buckets = sorted(draw(st.lists(st.sampled_from(["acme", "Ünïcode_1", "z"]), min_size=rows, max_size=rows)))
    columns = {"_bucket": pa.array(buckets, pa.string())}
    for index, kind in enumerate(kinds):
        arrow_type, values = COLUMN_TYPES[kind]
        data = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        name = draw(TEXT.filter(lambda n: n not in columns)) + f"_{index}"
        columns[name] = pa.array(data, arrow_type)
    outcomes = [TenantOutcome(bucket=b, status="ok") for b in sorted(set(buckets))]
    outcomes.append(TenantOutcome(bucket="broken", status="error", message=draw(TEXT)))
    return CombinedResult(outcomes, pa.table(columns))


class _Links:
    """What poll adds: a presigned URL as long as one with a session token gets."""

    def url(self, job: Job, result_format: ResultFormat) -> str:
        return "https://bucket.s3.amazonaws.com/jobs/x/result.json?" + "X" * 1800


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(result=combined_results(), extra_room=st.integers(60, 6000), response_room=st.integers(0, 20_000),
       finished_after=st.floats(0, 20_000_000, allow_nan=False))
def test_item_fits_and_decodes_to_a_prefix_of_the_result(
    result: CombinedResult, extra_room: int, response_room: int, finished_after: float
) -> None:
    job = _job()
    columns = json.dumps(result.columns, ensure_ascii=False)
    # Small budgets just above what the item needs without rows, so most examples are cut by one or both.
    item_budget = item_size(_item_without_rows(job, columns, result.meta(1.5, result.table.num_rows), 0.0)) \
        + len(ROWS_ATTRIBUTE) + extra_room
    response_budget = 8192 + 2 * len(columns.encode()) + 6 * len(json.dumps(result.meta(1.5, 0))) + response_room
    item = completed_item(job, result, 1.5, 0.0, item_budget=item_budget, response_budget=response_budget)
    # The execution time is set when the job completes, after the rows were fitted: any time still fits.
    item = item.finished(finished_after)
    assert item.meta["execution_time_seconds"] == round(min(finished_after, 9_999_999.999), 3)

    stored = _item_without_rows(job, item.columns, item.meta, 0.0) | {ROWS_ATTRIBUTE: item.rows_bz2}
    assert item_size(stored) <= item_budget
    rows_text = bz2.decompress(item.rows_bz2).decode()
    kept = item.meta["returned_rows"]
    assert rows_text == "[" + ",".join(table_to_json_rows(result.table)[:kept]) + "]"
    assert item.meta["total_rows"] == result.table.num_rows
    assert item.meta["truncated"] is (kept < result.table.num_rows)

    completed = job.model_copy(update={"status": JobStatus.COMPLETED, "columns": item.columns,
                                       "rows_bz2": item.rows_bz2, "meta": json.dumps(item.meta)})
    body = job_response_body(completed, ResultFormat.JSON, _Links())
    assert escaped_size(body) <= response_budget
    decoded = json.loads(body)
    assert decoded["meta"]["returned_rows"] == len(decoded["data"]["rows"]) == kept
    cursor = decoded["meta"]["next_cursor"]
    assert (cursor is None) is (kept == result.table.num_rows)
    if cursor is not None:
        assert decode_cursor(cursor, JOB_ID) == kept


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(TEXT.map(json.dumps), max_size=300), room=st.integers(30, 3000),
       chunk_bytes=st.integers(1, 400))
def test_fit_across_several_streams_is_a_valid_prefix(rows: list[str], room: int, chunk_bytes: int) -> None:
    try:
        kept, blob = fit_compressed_rows(rows, room, chunk_bytes)
    except ValueError:
        assert len(bz2.compress(b"[]", 9)) > room
        return
    assert len(blob) <= room
    assert json.loads(bz2.decompress(blob)) == [json.loads(r) for r in rows[:kept]]


def test_roomy_budget_keeps_every_row() -> None:
    rows = [json.dumps([i, "row"]) for i in range(5000)]
    kept, blob = fit_compressed_rows(rows, ITEM_BUDGET, chunk_bytes=10_000)
    assert kept == 5000
    assert bz2.decompress(blob).decode() == "[" + ",".join(rows) + "]"


def test_incompressible_rows_stop_near_the_budget() -> None:
    # Random text compresses little: the budget, not the row count, decides, and little room is wasted.
    rng = random.Random(1)
    rows = [json.dumps(["t", "".join(rng.choices(string.ascii_letters + string.digits, k=200))]) for _ in range(9000)]
    kept, blob = fit_compressed_rows(rows, ITEM_BUDGET)
    assert 0 < kept < len(rows)
    assert ITEM_BUDGET - 2000 < len(blob) <= ITEM_BUDGET
    assert bz2.decompress(blob).decode() == "[" + ",".join(rows[:kept]) + "]"


def test_the_real_budget_holds_for_a_large_incompressible_result() -> None:
    blobs = [os.urandom(120) for _ in range(30_000)]  # ~4.8 MB of base64 in JSON: cut by the item budget
    table = pa.table({"_bucket": pa.array(["acme"] * len(blobs)), "b": pa.array(blobs, pa.binary())})
    result = CombinedResult([TenantOutcome(bucket="acme", status="ok")], table)
    item = completed_item(_job(), result, 2.0, 0.0)
    stored = _item_without_rows(_job(), item.columns, item.meta, 0.0) | {ROWS_ATTRIBUTE: item.rows_bz2}
    assert ITEM_BUDGET - 4000 < item_size(stored) <= ITEM_BUDGET
    assert item.meta["truncated"] is True and 0 < item.meta["returned_rows"] < len(blobs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=30), max_size=20))
def test_escaped_lengths_bound_json_dumps_and_match_without_control_characters(texts: list[str]) -> None:
    computed = escaped_lengths(pa.array(texts, pa.large_string())).to_pylist()
    for text, size in zip(texts, computed, strict=True):
        assert size >= escaped_size(text)
        if not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            assert size == escaped_size(text)


def test_floats_survive_as_json() -> None:
    # NaN and infinities have no JSON number; the item text stays strict JSON.
    table = pa.table({"_bucket": ["a", "a"], "x": pa.array([math.nan, -math.inf])})
    item = completed_item(_job(), CombinedResult([TenantOutcome(bucket="a", status="ok")], table), 1.0, 0.0)
    assert json.loads(bz2.decompress(item.rows_bz2), parse_constant=lambda c: 1 / 0) == [["a", "NaN"],
                                                                                          ["a", "-Infinity"]]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(TEXT.map(json.dumps), min_size=2, max_size=6), cut=st.integers(1, 5), over=st.integers(0, 1))
def test_fit_never_takes_a_byte_over_its_room_at_the_exact_boundary(rows: list[str], cut: int, over: int) -> None:
    """The room is exactly the compressed size of a prefix (`over` 0), or one byte less (`over` 1): the
    search probes that prefix (few rows in one chunk), so a blob one byte over the room would be taken."""
    k = min(cut, len(rows) - 1)
    exact = len(bz2.compress(("[" + ",".join(rows[:k]) + "]").encode(), 9))
    room = exact - over
    kept, blob = fit_compressed_rows(rows, room)
    assert len(blob) <= room
    assert json.loads(bz2.decompress(blob)) == [json.loads(r) for r in rows[:kept]]


def test_no_room_even_for_the_empty_list_raises_at_the_exact_boundary() -> None:
    empty = len(bz2.compress(b"[]", 9))
    assert fit_compressed_rows(['"a"'], empty) == (0, bz2.compress(b"[]", 9))
    with pytest.raises(ValueError):
        fit_compressed_rows(['"a"'], empty - 1)
