"""DynamoDB item sizing, and the largest prefix of rendered rows that fits one item.

Sizes follow the AWS rules in "Item sizes and formats" (DynamoDB Developer Guide,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):

* String: length in UTF-8 bytes.
* Number: about 1 byte per two significant digits plus 1 byte; leading and trailing zeros are
  trimmed. AWS calls this approximate, so we round up and add 1 more byte for a minus sign.
* Binary: number of raw bytes.
* Null and Boolean: 1 byte.
* List and Map: 3 bytes of overhead regardless of contents, plus 1 byte per element, plus the
  elements' sizes; a Map element also counts its key (an attribute name: UTF-8 bytes).
* String/Number/Binary sets: the sum of the elements' sizes.
* The item: sum over top-level attributes of UTF-8 name length + value size.

Values are Python values as boto3's ``TypeSerializer`` would send them: str, int/Decimal (float is
rejected, as boto3 does), bytes/bytearray, bool, None, list/tuple, Mapping, set/frozenset.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ITEM_BUDGET", "MAX_ITEM_BYTES", "attribute_value_size", "fit_row_prefix", "item_size"]

MAX_ITEM_BYTES = 400 * 1024
# What the job item is fitted to: DynamoDB's 409,600-byte limit less a margin that also keeps it
# under moto's stricter 405,000 bytes (moto counts a number as its decimal text), so a result that
# fits locally fits on AWS and the other way round.
ITEM_BUDGET = 400_000

_LIST_OR_MAP_OVERHEAD = 3
_PER_ELEMENT_OVERHEAD = 1


def _number_size(value: int | Decimal) -> int:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"DynamoDB numbers must be finite, got {value}")
        # as_tuple() (not normalize()) so no context rounding can shorten the digits.
        sign, digits_tuple, _exponent = value.as_tuple()
        digits = "".join(map(str, digits_tuple))
    else:
        sign, digits = int(value < 0), str(abs(value))
    significant = len(digits.strip("0")) or 1  # zero still takes a digit
    # ceil(significant / 2) + 1, plus one byte for the sign to never under-count.
    return -(-significant // 2) + 1 + (1 if sign else 0)


def attribute_value_size(value: object) -> int:
    """Bytes DynamoDB counts for one attribute value (without the attribute's name)."""
    if value is None or isinstance(value, bool):  # bool before int: bool is an int subclass
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, int | Decimal):
        return _number_size(value)
    if isinstance(value, float):
        raise TypeError("float is not supported by DynamoDB's serializer; use Decimal")
    if isinstance(value, bytes | bytearray | memoryview):
        return len(bytes(value))
    if isinstance(value, Mapping):
        return _LIST_OR_MAP_OVERHEAD + sum(
            _PER_ELEMENT_OVERHEAD + len(str(key).encode("utf-8")) + attribute_value_size(item)
            for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return _LIST_OR_MAP_OVERHEAD + sum(_PER_ELEMENT_OVERHEAD + attribute_value_size(v) for v in value)
    if isinstance(value, set | frozenset):
        return sum(attribute_value_size(v) for v in value)
    raise TypeError(f"unsupported DynamoDB attribute value type: {type(value).__name__}")


def item_size(item: Mapping[str, object]) -> int:
    """Bytes DynamoDB counts for a whole item: each attribute's UTF-8 name plus its value."""
    return sum(len(name.encode("utf-8")) + attribute_value_size(value) for name, value in item.items())


def fit_row_prefix(
    row_texts: list[str], base_item: dict, rows_attribute: str, budget: int = MAX_ITEM_BYTES
) -> int:
    """Largest k such that ``base_item | {rows_attribute: "[" + ",".join(row_texts[:k]) + "]"}`` has
    ``item_size <= budget``.

    Returns 0 both when no row fits and when even ``"[]"`` does not fit; a caller that must tell the
    two apart checks ``item_size`` of the item with ``"[]"``. Runs in O(n): UTF-8 lengths are
    computed once, then a prefix sum and a count, all vectorised by Arrow (no
    re-encoding of the JSON per candidate k).
    """
    rest = {name: value for name, value in base_item.items() if name != rows_attribute}
    # Bytes left for the rows text once the brackets are counted.
    remaining = budget - item_size(rest) - len(rows_attribute.encode("utf-8")) - 2
    if remaining < 0 or not row_texts:
        return 0
    lengths = pc.binary_length(pa.array(row_texts, type=pa.large_string()))
    # Text of k rows: the first k lengths plus k - 1 commas = prefix sum of (length + 1), minus 1.
    needed = pc.subtract(pc.cumulative_sum(pc.add(lengths, 1)), 1)
    # `needed` is strictly increasing, so the count of prefixes within budget is the answer.
    return int(pc.sum(pc.less_equal(needed, remaining)).as_py() or 0)
