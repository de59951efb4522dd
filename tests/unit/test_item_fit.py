"""DynamoDB item sizing and the largest row prefix that fits an item."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queryall.logic.item_fit import MAX_ITEM_BYTES, attribute_value_size, fit_row_prefix, item_size


def test_max_item_bytes_is_400_kib() -> None:
    assert MAX_ITEM_BYTES == 409600


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("", 0),
        ("abc", 3),
        ("é", 2),  # two UTF-8 bytes
        ("😀", 4),
        ("a€😀", 1 + 3 + 4),
        (b"\x00\xff\x10", 3),
        (bytearray(b"12345"), 5),
        (True, 1),
        (False, 1),
        (None, 1),
    ],
)
def test_scalar_sizes(value: object, size: int) -> None:
    assert attribute_value_size(value) == size


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 2),  # one digit -> ceil(1/2) + 1
        (7, 2),
        (12, 2),  # two digits -> 1 + 1
        (123, 3),  # three digits -> 2 + 1
        (1000, 2),  # trailing zeros trimmed: "1"
        (1200300, 4),  # "12003": 5 digits -> 3 + 1
        (-12, 3),  # one more byte for the sign, to never under-count
        (10**37 + 1, 20),  # 38 digits -> 19 + 1
        (Decimal("0.001"), 2),  # leading zeros trimmed: "1"
        (Decimal("123.4500"), 4),  # "12345" -> 3 + 1
        (Decimal("1E+10"), 2),
        (Decimal("-0.5"), 3),
        (Decimal("1234567890.1234567890123456789012345678"), 20),  # 38 significant digits, no rounding
    ],
)
def test_number_sizes(value: int | Decimal, size: int) -> None:
    assert attribute_value_size(value) == size


def test_collections() -> None:
    assert attribute_value_size([]) == 3
    assert attribute_value_size({}) == 3
    # L: 3 + per element (1 + size): "ab" -> 3, 12 -> 3, None -> 2
    assert attribute_value_size(["ab", 12, None]) == 3 + 3 + 3 + 2
    # M: 3 + per element (1 + UTF-8 key + size)
    assert attribute_value_size({"k": "v", "é": True}) == 3 + (1 + 1 + 1) + (1 + 2 + 1)
    # Nested: {"a": ["x"]} -> 3 + (1 + 1 + (3 + (1 + 1))) = 10
    assert attribute_value_size({"a": ["x"]}) == 10
    assert attribute_value_size(("x", "y")) == 3 + 2 + 2
    # Sets: the sum of the elements.
    assert attribute_value_size({"ab", "cde"}) == 5
    assert attribute_value_size({1, 123}) == 2 + 3
    assert attribute_value_size(frozenset({b"\x00", b"\x01\x02"})) == 3


def test_item_size_counts_attribute_names() -> None:
    item = {"job_id": "abc", "count": 5, "é": None, "rows": "[]"}
    assert item_size(item) == (6 + 3) + (5 + 2) + (2 + 1) + (4 + 2)
    assert item_size({}) == 0


@pytest.mark.parametrize("bad", [1.5, float("nan"), object(), Decimal("NaN"), Decimal("Infinity")])
def test_unsupported_values_raise(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        attribute_value_size(bad)


def _full_size(rows: list[str], base: dict, attribute: str, k: int) -> int:
    return item_size(base | {attribute: "[" + ",".join(rows[:k]) + "]"})


def _assert_exact_boundary(rows: list[str], base: dict, attribute: str, budget: int) -> int:
    k = fit_row_prefix(rows, base, attribute, budget)
    assert _full_size(rows, base, attribute, k) <= budget
    if k < len(rows):
        assert _full_size(rows, base, attribute, k + 1) > budget
    return k


@pytest.mark.parametrize(
    "row",
    [
        '["acme",1,"x"]',  # ASCII
        '["café","é"]',  # two-byte characters
        '["😀😀","日本"]',  # four- and three-byte characters
        "[" + ",".join(f'"{"w" * 40}{i}"' for i in range(60)) + "]",  # a wide row
    ],
)
def test_fit_is_exact_at_the_boundary(row: str) -> None:
    rows = [row] * 500
    base = {"job_id": "j-1", "status": "completed", "meta": '{"total_rows":500}'}
    for k_target in (1, 2, 37, 250):
        # The budget that fits exactly k_target rows, then one byte less.
        budget = _full_size(rows, base, "rows", k_target)
        assert _assert_exact_boundary(rows, base, "rows", budget) == k_target
        assert _assert_exact_boundary(rows, base, "rows", budget - 1) == k_target - 1
    assert fit_row_prefix(rows, base, "rows", 10**9) == 500


def test_fit_with_the_default_budget_and_multibyte_rows() -> None:
    rows = [f'["bücket_{i}","{"€" * (i % 50)}"]' for i in range(20000)]
    base = {"job_id": "x", "submitted_at": Decimal("1700000000.123")}
    k = _assert_exact_boundary(rows, base, "rows", MAX_ITEM_BYTES)
    assert 0 < k < len(rows)


def test_empty_list_edge_cases() -> None:
    base = {"id": "abc"}
    empty_size = item_size(base | {"rows": "[]"})
    assert fit_row_prefix([], base, "rows", empty_size) == 0
    assert fit_row_prefix(["[1]"], base, "rows", empty_size) == 0  # `[]` fits, `[[1]]` does not
    assert fit_row_prefix(["[1]"], base, "rows", empty_size + 3) == 1
    # Even `[]` does not fit: 0 as well, documented.
    assert fit_row_prefix(["[1]"], base, "rows", empty_size - 1) == 0
    assert fit_row_prefix(["[1]"], {"big": "x" * 500}, "rows", 100) == 0


def test_existing_rows_attribute_in_the_base_is_replaced_not_added() -> None:
    base = {"id": "a", "rows": "x" * 1000}
    rows = ["[1]", "[2]"]
    assert fit_row_prefix(rows, base, "rows", item_size({"id": "a", "rows": "[[1],[2]]"})) == 2


def _brute_force(rows: list[str], base: dict, attribute: str, budget: int) -> int:
    fitting = [k for k in range(len(rows) + 1) if _full_size(rows, base, attribute, k) <= budget]
    return max(fitting, default=0)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.text(max_size=12), max_size=25),
    base=st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(st.text(max_size=20), st.integers(-(10**12), 10**12), st.booleans(), st.none()),
        max_size=4,
    ),
    attribute=st.sampled_from(["rows", "r", "résultats"]),
    budget=st.integers(0, 400),
)
def test_fit_matches_brute_force(rows: list[str], base: dict, attribute: str, budget: int) -> None:
    assert fit_row_prefix(rows, base, attribute, budget) == _brute_force(rows, base, attribute, budget)
