"""DuckDB -> JSON rendering: every type of the mapping table, produced by real DuckDB SQL via Arrow."""

from __future__ import annotations

import json
import math

import duckdb
import pyarrow as pa
import pytest

from queryall.logic.json_rows import column_types, table_to_json_rows


def _strict_loads(text: str) -> object:
    def reject(constant: str) -> object:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def _arrow(sql: str) -> pa.Table:
    """Run SQL like the per-tenant step does and export to Arrow (session zone not UTC on purpose)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'America/New_York'")
        return con.execute(sql).arrow().read_all()
    finally:
        con.close()


# (SQL expression, DuckDB type reported for the Arrow column, JSON text of the value)
CASES = [
    ("-5::TINYINT", "TINYINT", "-5"),
    ("-300::SMALLINT", "SMALLINT", "-300"),
    ("-70000::INTEGER", "INTEGER", "-70000"),
    ("(-9223372036854775808)::BIGINT", "BIGINT", "-9223372036854775808"),
    ("255::UTINYINT", "UTINYINT", "255"),
    ("65535::USMALLINT", "USMALLINT", "65535"),
    ("4294967295::UINTEGER", "UINTEGER", "4294967295"),
    ("18446744073709551615::UBIGINT", "UBIGINT", "18446744073709551615"),
    (
        "-170141183460469231731687303715884105727::HUGEINT",
        "DECIMAL(38,0)",
        "-170141183460469231731687303715884105727",
    ),
    # What the per-tenant step exports for UHUGEINT and BIT: their VARCHAR text.
    (
        "CAST(340282366920938463463374607431768211455::UHUGEINT AS VARCHAR)",
        "VARCHAR",
        '"340282366920938463463374607431768211455"',
    ),
    ("CAST('0101'::BIT AS VARCHAR)", "VARCHAR", '"0101"'),
    ("1.5::DECIMAL(10,3)", "DECIMAL(10,3)", "1.500"),
    ("10.00::DECIMAL(12,2)", "DECIMAL(12,2)", "10.00"),
    ("-0.05::DECIMAL(4,2)", "DECIMAL(4,2)", "-0.05"),
    (
        "123456789012345678901234567.891::DECIMAL(38,3)",
        "DECIMAL(38,3)",
        "123456789012345678901234567.891",
    ),
    ("0.1::FLOAT", "FLOAT", "0.1"),
    ("3.4e38::FLOAT", "FLOAT", "3.4e+38"),
    ("0.1::DOUBLE", "DOUBLE", "0.1"),
    ("1e300::DOUBLE", "DOUBLE", "1e300"),
    ("-0.0::DOUBLE", "DOUBLE", "-0.0"),
    ("9007199254740993::DOUBLE", "DOUBLE", "9007199254740992.0"),
    ("'nan'::DOUBLE", "DOUBLE", '"NaN"'),
    ("'inf'::DOUBLE", "DOUBLE", '"Infinity"'),
    ("'-inf'::DOUBLE", "DOUBLE", '"-Infinity"'),
    ("'nan'::FLOAT", "FLOAT", '"NaN"'),
    ("'-inf'::FLOAT", "FLOAT", '"-Infinity"'),
    ("'tab\there \"quoted\" back\\slash é 😀'", "VARCHAR", '"tab\\there \\"quoted\\" back\\\\slash é 😀"'),
    ("''", "VARCHAR", '""'),
    ("true", "BOOLEAN", "true"),
    ("false", "BOOLEAN", "false"),
    ("DATE '2024-02-29'", "DATE", '"2024-02-29"'),
    ("'infinity'::DATE", "DATE", '"infinity"'),
    ("TIME '03:04:05.123'", "TIME", '"03:04:05.123"'),
    ("TIMESTAMP '2024-01-02 03:04:05.123456'", "TIMESTAMP", '"2024-01-02 03:04:05.123456"'),
    ("'2024-01-02 03:04:05'::TIMESTAMP_S", "TIMESTAMP_S", '"2024-01-02 03:04:05"'),
    ("'2024-01-02 03:04:05.123'::TIMESTAMP_MS", "TIMESTAMP_MS", '"2024-01-02 03:04:05.123"'),
    ("'2024-01-02 03:04:05.123456789'::TIMESTAMP_NS", "TIMESTAMP_NS", '"2024-01-02 03:04:05.123456789"'),
    (
        "TIMESTAMPTZ '2024-01-02 01:04:05+00'",
        "TIMESTAMP WITH TIME ZONE",
        '"2024-01-02 01:04:05+00"',
    ),
    ("TIMESTAMPTZ '2024-07-01 12:00:00-04'", "TIMESTAMP WITH TIME ZONE", '"2024-07-01 16:00:00+00"'),
    ("INTERVAL '1 month 2 days 3 hours'", "INTERVAL", '"1 month 2 days 03:00:00"'),
    ("INTERVAL '-90 minutes'", "INTERVAL", '"-01:30:00"'),
    ("'00000000-0000-0000-0000-000000000001'::UUID", "VARCHAR", '"00000000-0000-0000-0000-000000000001"'),
    ("'\\x00\\xFFab'::BLOB", "BLOB", '"AP9hYg=="'),
    ("''::BLOB", "BLOB", '""'),
    ("[1, 2, NULL]", "INTEGER[]", "[1,2,null]"),
    ("[]::INTEGER[]", "INTEGER[]", "[]"),
    ("[[1], [], NULL]", "INTEGER[][]", "[[1],[],null]"),
    ("[1, 2, 3]::INTEGER[3]", "INTEGER[3]", "[1,2,3]"),
    ("['a', NULL]", "VARCHAR[]", '["a",null]'),
    ("{'x': 1, 'y': 'a'}", "STRUCT(x INTEGER, y VARCHAR)", '{"x":1,"y":"a"}'),
    ("{'x': {'deep': [true]}}", "STRUCT(x STRUCT(deep BOOLEAN[]))", '{"x":{"deep":[true]}}'),
    ("MAP {'a': 1, 'b': 2}", "MAP(VARCHAR, INTEGER)", '{"a":1,"b":2}'),
    ("MAP {2: 'two', 1: 'one'}", "MAP(INTEGER, VARCHAR)", '{"2":"two","1":"one"}'),
    ("'sad'::ENUM('happy', 'sad')", "VARCHAR", '"sad"'),
    ("'{\"k\": [1, 2]}'::JSON", "VARCHAR", '"{\\"k\\": [1, 2]}"'),
    ("['[1]'::JSON]", "VARCHAR[]", '["[1]"]'),
    ("NULL", "INTEGER", "null"),
    ("NULL::VARCHAR", "VARCHAR", "null"),
    ("NULL::DOUBLE", "DOUBLE", "null"),
    ("NULL::DECIMAL(10,2)", "DECIMAL(10,2)", "null"),
    ("NULL::INTEGER[]", "INTEGER[]", "null"),
    ("NULL::STRUCT(a DOUBLE)", "STRUCT(a DOUBLE)", "null"),
    ("NULL::MAP(VARCHAR, DOUBLE)", "MAP(VARCHAR, DOUBLE)", "null"),
    ("NULL::BLOB", "BLOB", "null"),
    # Non-finite floats, DECIMAL, BLOB and JSON nested at any depth follow the same rules.
    ("[1.0, 'nan'::DOUBLE, NULL]", "DOUBLE[]", '[1.0,"NaN",null]'),
    ("[0.5::FLOAT, 'inf'::FLOAT]::FLOAT[2]", "FLOAT[2]", '[0.5,"Infinity"]'),
    ("{'f': '-inf'::DOUBLE, 'g': NULL::DOUBLE}", "STRUCT(f DOUBLE, g DOUBLE)", '{"f":"-Infinity","g":null}'),
    ("MAP {'k': 'nan'::DOUBLE}", "MAP(VARCHAR, DOUBLE)", '{"k":"NaN"}'),
    ("[[{'z': 'nan'::DOUBLE}]]", "STRUCT(z DOUBLE)[][]", '[[{"z":"NaN"}]]'),
    ("[10.00::DECIMAL(12,2)]", "DECIMAL(12,2)[]", "[10.00]"),
    ("{'b': '\\x01'::BLOB}", "STRUCT(b BLOB)", '{"b":"AQ=="}'),
    ("{'it''s \"odd\"': 0.25::DOUBLE}", "STRUCT(\"it's \"\"odd\"\"\" DOUBLE)", '{"it\'s \\"odd\\"":0.25}'),
    ("union_value(num := 2)::UNION(num INTEGER, s VARCHAR)", "UNION(num INTEGER, s VARCHAR)", '{"num":2}'),
    ("union_value(d := 1.5)::UNION(d DOUBLE, s VARCHAR)", "UNION(d DOUBLE, s VARCHAR)", '"1.5"'),
]


@pytest.mark.parametrize(("expression", "duckdb_type", "expected"), CASES)
def test_type_mapping(expression: str, duckdb_type: str, expected: str) -> None:
    table = _arrow(f"SELECT {expression} AS v")
    assert column_types(table) == [{"name": "v", "type": duckdb_type}]
    rows = table_to_json_rows(table)
    assert rows == [f"[{expected}]"]
    _strict_loads(rows[0])


def test_every_type_in_one_row_is_strict_json_in_column_order() -> None:
    sql = "SELECT " + ", ".join(f"{expression} AS c{i}" for i, (expression, _t, _e) in enumerate(CASES))
    table = _arrow(sql)
    [row] = table_to_json_rows(table)
    assert row == "[" + ",".join(expected for _x, _t, expected in CASES) + "]"
    values = _strict_loads(row)
    assert isinstance(values, list) and len(values) == len(CASES)
    assert [c["type"] for c in column_types(table)] == [t for _x, t, _e in CASES]


def test_values_are_exact_when_parsed_back() -> None:
    table = _arrow(
        "SELECT 18446744073709551615::UBIGINT a, 123456789012345678901234567.891::DECIMAL(38,3) b, "
        "170141183460469231731687303715884105727::HUGEINT c"
    )
    [row] = table_to_json_rows(table)
    from decimal import Decimal

    assert json.loads(row, parse_float=Decimal) == [
        18446744073709551615,
        Decimal("123456789012345678901234567.891"),
        170141183460469231731687303715884105727,
    ]


def test_uhugeint_overflows_in_duckdb_arrow_export() -> None:
    # Why the per-tenant step must cast UHUGEINT to VARCHAR before export (see the module docstring).
    table = _arrow("SELECT 340282366920938463463374607431768211455::UHUGEINT v")
    assert table_to_json_rows(table) == ["[-1]"]


def test_many_rows_keep_their_order_and_nulls() -> None:
    table = _arrow(
        "SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE i::DOUBLE / 4 END d, "
        "CASE WHEN i % 5 = 0 THEN 'nan'::DOUBLE ELSE 1 END n, 'r' || i s FROM range(200000) t(i)"
    )
    rows = table_to_json_rows(table)
    assert len(rows) == 200000
    for i in (0, 1, 3, 5, 99999, 199999):
        d = "null" if i % 3 == 0 else json.dumps(i / 4)
        n = '"NaN"' if i % 5 == 0 else "1.0"
        assert rows[i] == f'[{i},{d},{n},"r{i}"]'
    assert [_strict_loads(r)[0] for r in rows[:1000]] == list(range(1000))


def test_all_rendered_rows_parse_strictly() -> None:
    table = _arrow(
        "SELECT [x, -x, x / 0] l, {'v': x / 0} s FROM (SELECT unnest([0.0, 1.5, -2.0, 'nan'::DOUBLE]) x)"
    )
    rendered = [_strict_loads(r) for r in table_to_json_rows(table)]
    assert rendered[0] == [[0.0, -0.0, "NaN"], {"v": "NaN"}]
    assert rendered[1] == [[1.5, -1.5, "Infinity"], {"v": "Infinity"}]
    assert rendered[2] == [[-2.0, 2.0, "-Infinity"], {"v": "-Infinity"}]
    assert rendered[3][0] == ["NaN", "NaN", "NaN"]
    assert not any(isinstance(v, float) and not math.isfinite(v) for row in rendered for v in row[0])


def test_duplicate_and_odd_column_names() -> None:
    table = _arrow("SELECT 1 AS a, 'x' AS a, 2 AS \"we\"\"ird name\", 3 AS \"select\"")
    assert table_to_json_rows(table) == ['[1,"x",2,3]']
    assert column_types(table) == [
        {"name": "a", "type": "INTEGER"},
        {"name": "a", "type": "VARCHAR"},
        {"name": 'we"ird name', "type": "INTEGER"},
        {"name": "select", "type": "INTEGER"},
    ]


def test_empty_results() -> None:
    empty = _arrow("SELECT 1::BIGINT AS a, 'x' AS b WHERE false")
    assert table_to_json_rows(empty) == []
    assert column_types(empty) == [{"name": "a", "type": "BIGINT"}, {"name": "b", "type": "VARCHAR"}]
    no_columns = pa.table({"x": [1, 2]}).drop_columns(["x"])
    assert table_to_json_rows(no_columns) == ["[]"] * no_columns.num_rows
    assert column_types(no_columns) == []


def test_arrow_json_extension_type_is_a_string_too() -> None:
    # DuckDB's JSON may hold NaN, so JSON text is never spliced in raw, even when typed as JSON.
    json_type = pa.json_(pa.string())
    table = pa.table(
        {
            "j": pa.array(['{"a": NaN}', None], type=json_type),
            "l": pa.ListArray.from_arrays(
                pa.array([0, 1, 1], pa.int32()), pa.array(["[1]"], json_type), mask=pa.array([False, True])
            ),
        }
    )
    assert column_types(table) == [{"name": "j", "type": "JSON"}, {"name": "l", "type": "JSON[]"}]
    assert table_to_json_rows(table) == ['["{\\"a\\": NaN}",["[1]"]]', "[null,null]"]


def test_merged_tables_with_chunks_and_null_type_render() -> None:
    table = pa.concat_tables(
        [
            pa.table({"_bucket": ["b"], "x": pa.array([1], pa.int64()), "z": pa.nulls(1)}),
            pa.table({"_bucket": ["a"], "x": pa.array([None], pa.int64()), "z": pa.nulls(1)}),
        ]
    )
    assert table_to_json_rows(table) == ['["b",1,null]', '["a",null,null]']
