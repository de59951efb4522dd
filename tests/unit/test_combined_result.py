"""Merging partial results: `_bucket` first, union of columns, type promotion, stable bucket order."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from queryall.logic.combined_result import merge_partials
from queryall.logic.json_rows import table_to_json_rows


def _partial(sql: str) -> pa.Table:
    """A tenant's answer as the per-tenant step produces it: real DuckDB SQL, `_bucket` first."""
    con = duckdb.connect()
    try:
        return con.execute(sql).arrow().read_all()
    finally:
        con.close()


def merged_answers(*sqls: str) -> pa.Table:
    """The tenants' answers to these queries, one tenant each, merged."""
    return merge_partials([_partial(sql) for sql in sqls])


def test_empty_input_gives_only_the_bucket_column() -> None:
    merged = merge_partials([])
    assert merged.column_names == ["_bucket"]
    assert merged.schema.field("_bucket").type == pa.string()
    assert merged.num_rows == 0


@pytest.mark.parametrize(
    ("sqls", "column", "arrow_type", "values"),
    [
        pytest.param(["SELECT 'a' AS _bucket, 1::INTEGER AS n", "SELECT 'b' AS _bucket, 5000000000::BIGINT AS n",
                      "SELECT 'c' AS _bucket, 3::TINYINT AS n"],
                     "n", pa.int64(), [1, 5000000000, 3], id="integer_and_bigint_promote_to_int64"),
        pytest.param(["SELECT 'a' AS _bucket, 2::BIGINT AS x", "SELECT 'b' AS _bucket, 0.5::DOUBLE AS x"],
                     "x", pa.float64(), [2.0, 0.5], id="int_and_double_promote_to_float64"),
        pytest.param(["SELECT 'a' AS _bucket, 170141183460469231731687303715884105727::HUGEINT AS h",
                      "SELECT 'b' AS _bucket, 0.125::DECIMAL(4,3) AS h"],
                     "h", pa.string(), ["170141183460469231731687303715884105727", "0.125"],
                     id="decimal_beyond_38_digits_falls_back_to_text"),
    ],
)
def test_a_column_takes_one_type_that_keeps_every_value(
    sqls: list[str], column: str, arrow_type: pa.DataType, values: list
) -> None:
    merged = merged_answers(*sqls)
    assert merged.schema.field(column).type == arrow_type
    assert merged.column(column).to_pylist() == values


def test_unsigned_and_signed_integers_keep_every_value() -> None:
    merged = merged_answers(
        "SELECT 'a' AS _bucket, 4294967295::UINTEGER AS u, 18446744073709551615::UBIGINT AS w",
        "SELECT 'b' AS _bucket, (-1)::INTEGER AS u, (-1)::BIGINT AS w",
    )
    assert merged.schema.field("u").type == pa.int64()
    assert merged.schema.field("w").type == pa.decimal128(20, 0)
    assert merged.column("w").to_pylist() == [Decimal(18446744073709551615), Decimal(-1)]


def test_decimals_widen_to_hold_every_value() -> None:
    merged = merged_answers(
        "SELECT 'a' AS _bucket, 12345678.12::DECIMAL(10,2) AS d",
        "SELECT 'b' AS _bucket, 1.125::DECIMAL(4,3) AS d",
        "SELECT 'c' AS _bucket, 9223372036854775807::BIGINT AS d",
    )
    assert merged.schema.field("d").type == pa.decimal128(22, 3)
    assert merged.column("d").to_pylist() == [
        Decimal("12345678.120"),
        Decimal("1.125"),
        Decimal("9223372036854775807.000"),
    ]


def test_string_and_large_string_unify() -> None:
    merged = merge_partials(
        [
            pa.table({"_bucket": ["a"], "s": pa.array(["x"], pa.string())}),
            pa.table({"_bucket": ["b"], "s": pa.array(["y"], pa.large_string())}),
        ]
    )
    assert merged.schema.field("s").type == pa.large_string()
    assert merged.column("s").to_pylist() == ["x", "y"]


def test_null_typed_columns_take_the_other_type() -> None:
    merged = merge_partials(
        [
            pa.table({"_bucket": ["a"], "v": pa.nulls(1)}),
            _partial("SELECT 'b' AS _bucket, TIMESTAMP '2024-01-02 03:04:05' AS v"),
        ]
    )
    assert merged.schema.field("v").type == pa.timestamp("us")
    assert table_to_json_rows(merged) == ['["a",null]', '["b","2024-01-02 03:04:05"]']
    only_nulls = merge_partials([pa.table({"_bucket": ["a"], "v": pa.nulls(1)})])
    assert only_nulls.schema.field("v").type == pa.null()


def test_missing_columns_are_null_and_keep_first_seen_order() -> None:
    merged = merged_answers(
        "SELECT 'b' AS _bucket, 1 AS x, 'p' AS y",
        "SELECT 'a' AS _bucket, 'q' AS y, 2.5 AS z",
        "SELECT 'c' AS _bucket, true AS w",
    )
    assert merged.column_names == ["_bucket", "x", "y", "z", "w"]
    assert merged.to_pylist() == [
        {"_bucket": "a", "x": None, "y": "q", "z": Decimal("2.5"), "w": None},
        {"_bucket": "b", "x": 1, "y": "p", "z": None, "w": None},
        {"_bucket": "c", "x": None, "y": None, "z": None, "w": True},
    ]


def test_incompatible_types_become_duckdb_text_in_every_partial() -> None:
    merged = merge_partials(
        [
            _partial("SELECT 'a' AS _bucket, 42 AS v, [1, 2] AS l, DATE '2024-01-02' AS d"),
            _partial(
                "SELECT 'b' AS _bucket, 'forty-two' AS v, 'none' AS l, TIMESTAMP '2024-01-02 03:00' AS d"
            ),
            _partial("SELECT 'c' AS _bucket, true AS v, NULL AS l"),
        ]
    )
    for name in ("v", "l", "d"):
        assert merged.schema.field(name).type == pa.string()
    assert merged.column("v").to_pylist() == ["42", "forty-two", "true"]
    assert merged.column("l").to_pylist() == ["[1, 2]", "none", None]
    assert merged.column("d").to_pylist() == ["2024-01-02", "2024-01-02 03:00:00", None]


def test_naive_and_zoned_timestamps_are_not_mixed() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    zoned = con.execute("SELECT 'a' AS _bucket, TIMESTAMPTZ '2024-01-02 03:04:05+00' AS t").arrow().read_all()
    naive = _partial("SELECT 'b' AS _bucket, TIMESTAMP '2024-01-02 03:04:05' AS t")
    merged = merge_partials([zoned, naive])
    assert merged.column("t").to_pylist() == ["2024-01-02 03:04:05+00", "2024-01-02 03:04:05"]


def test_nested_types_unify_and_overflow_falls_back_to_text() -> None:
    lists = merged_answers(
        "SELECT 'a' AS _bucket, [1::INTEGER] AS l, {'k': 1::INTEGER} AS s",
        "SELECT 'b' AS _bucket, [2::BIGINT] AS l, {'k': 2::BIGINT} AS s",
    )
    assert lists.schema.field("l").type == pa.list_(pa.int64())
    assert lists.schema.field("s").type == pa.struct([("k", pa.int64())])
    overflow = merged_answers(
        "SELECT 'a' AS _bucket, [18446744073709551615::UBIGINT] AS l",
        "SELECT 'b' AS _bucket, [-1::BIGINT] AS l",
    )
    assert overflow.column("l").to_pylist() == ["[18446744073709551615]", "[-1]"]


def test_enum_dictionaries_are_decoded() -> None:
    merged = merged_answers(
        "SELECT 'a' AS _bucket, 'x'::ENUM('x', 'y') AS e",
        "SELECT 'b' AS _bucket, 'z'::ENUM('z') AS e",
        "SELECT 'c' AS _bucket, 'plain' AS e",
    )
    assert merged.schema.field("e").type == pa.string()
    assert merged.column("e").to_pylist() == ["x", "z", "plain"]
    # Decoded, so ENUM columns behave like the strings they are: promotion, not the text fallback.
    only_enums = merged_answers(
        "SELECT 'a' AS _bucket, 'x'::ENUM('x', 'y') AS e",
        "SELECT 'b' AS _bucket, 'z'::ENUM('z') AS e",
    )
    assert only_enums.schema.field("e").type == pa.string()
    with_large = merge_partials(
        [
            _partial("SELECT 'a' AS _bucket, 'x'::ENUM('x', 'y') AS e"),
            pa.table({"_bucket": ["b"], "e": pa.array(["w"], pa.large_string())}),
        ]
    )
    assert with_large.schema.field("e").type == pa.large_string()
    assert with_large.column("e").to_pylist() == ["x", "w"]


def test_rows_sorted_by_bucket_keeping_each_tenants_order() -> None:
    # Tenants' rows arrive deliberately out of value order; only `_bucket` decides, stably.
    batch_one = _partial(
        "SELECT * FROM (VALUES ('zeta', 3), ('zeta', 1), ('zeta', 2), ('alpha', 9), ('alpha', 8)) "
        "t(_bucket, n)"
    )
    batch_two = _partial("SELECT * FROM (VALUES ('mid', 5), ('mid', 4), ('beta', 7)) t(_bucket, n)")
    merged = merge_partials([batch_one, batch_two])
    assert merged.column_names[0] == "_bucket"
    assert list(zip(merged.column("_bucket").to_pylist(), merged.column("n").to_pylist(), strict=True)) == [
        ("alpha", 9),
        ("alpha", 8),
        ("beta", 7),
        ("mid", 5),
        ("mid", 4),
        ("zeta", 3),
        ("zeta", 1),
        ("zeta", 2),
    ]


def test_large_merge_is_stable() -> None:
    partials = [
        _partial(f"SELECT 'b{k % 7:02d}' AS _bucket, {k} AS batch, 1000 - i AS n FROM range(500) r(i)")
        for k in range(30)
    ]
    merged = merge_partials(partials)
    assert merged.num_rows == 15000
    buckets = merged.column("_bucket").to_pylist()
    assert buckets == sorted(buckets)
    batches, values = merged.column("batch").to_pylist(), merged.column("n").to_pylist()
    pairs = list(zip(buckets, batches, values, strict=True))
    for bucket in {b for b, _k, _n in pairs}:
        mine = [(k, n) for b, k, n in pairs if b == bucket]
        # Same bucket: batches in input order, each tenant's rows in their original (descending n) order.
        assert mine == sorted(mine, key=lambda kn: (kn[0], -kn[1]))


def test_repeated_column_names_line_up_by_occurrence() -> None:
    merged = merged_answers(
        "SELECT 'b' AS _bucket, 1 AS a, 'x' AS a",
        "SELECT 'a' AS _bucket, 2 AS a, 'y' AS a",
    )
    assert merged.column_names == ["_bucket", "a", "a"]
    assert table_to_json_rows(merged) == ['["a",2,"y"]', '["b",1,"x"]']


def test_zero_row_partials_still_contribute_columns() -> None:
    merged = merged_answers(
        "SELECT 'a' AS _bucket, 1::BIGINT AS x, 'q' AS y WHERE false",
        "SELECT 'b' AS _bucket, 2::INTEGER AS x",
    )
    assert merged.column_names == ["_bucket", "x", "y"]
    assert merged.schema.field("x").type == pa.int64()
    assert merged.to_pylist() == [{"_bucket": "b", "x": 2, "y": None}]


def test_partial_without_leading_bucket_is_an_error() -> None:
    with pytest.raises(ValueError, match="_bucket"):
        merge_partials([pa.table({"x": [1], "_bucket": ["a"]})])


def test_meta_counts_skipped_and_errored_tenants_apart() -> None:
    from queryall.logic.aggregation import CombinedResult
    from queryall.models.workflow import TenantOutcome

    outcomes = [
        TenantOutcome(bucket="a", status="ok"),
        TenantOutcome(bucket="b", status="ok"),
        TenantOutcome(bucket="c", status="skipped", message="no table payment"),
        TenantOutcome(bucket="d", status="skipped", message="no table payment"),
        TenantOutcome(bucket="e", status="skipped", message="no table payment"),
        TenantOutcome(bucket="f", status="error", message="boom"),
    ]
    table = pa.table({"_bucket": pa.array(["a", "b"]), "n": pa.array([1, 2])})
    meta = CombinedResult(outcomes, table).meta(1.0, 2)
    assert (meta["databases_queried"], meta["databases_skipped"], meta["databases_errored"]) == (2, 3, 1)
    assert meta["skipped"] == ["c", "d", "e"]
    assert meta["errors"] == {"f": "boom"}
