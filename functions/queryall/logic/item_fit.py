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

import bisect
import bz2
from collections.abc import Mapping
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ITEM_BUDGET", "MAX_ITEM_BYTES", "attribute_value_size", "fit_compressed_rows", "fit_row_prefix", "item_size",
    "largest_prefix",
]

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
    return largest_prefix(pc.add(lengths, 1), remaining + 1)


def largest_prefix(sizes: pa.Array, budget: int) -> int:
    """Largest k with ``sizes[0] + ... + sizes[k-1] <= budget``, for positive sizes (vectorised)."""
    if budget < 0 or len(sizes) == 0:
        return 0
    # The prefix sums strictly increase, so the count of those within budget is the answer.
    return int(pc.sum(pc.less_equal(pc.cumulative_sum(pc.cast(sizes, pa.int64())), budget)).as_py() or 0)


# The job item's rows are bzip2-compressed JSON text: on text-heavy results bzip2 keeps about 1.7x the rows
# gzip does (bench/item_capacity.py), and the standard library decompresses it, so poll needs nothing more.
# Level 9 means 900 kB blocks; the text is compressed in independent streams of that size (bz2.decompress
# reads concatenated streams as one), so the streams' sizes add up and cost nothing in ratio.
COMPRESS_LEVEL = 9
CHUNK_BYTES = 900_000


def _compress(text: str) -> bytes:
    return bz2.compress(text.encode("utf-8"), COMPRESS_LEVEL)


def fit_compressed_rows(row_texts: list[str], room: int, chunk_bytes: int = CHUNK_BYTES) -> tuple[int, bytes]:
    """Largest k (nearly: see below) such that the compressed ``"[" + ",".join(row_texts[:k]) + "]"`` takes
    at most ``room`` bytes, and that compressed text (bz2.decompress gives the JSON back).

    Rows are cut into chunks of about ``chunk_bytes`` by prefix sums of their lengths and each chunk is
    compressed once, as its own stream. In the chunk where the room runs out, candidate prefixes are
    compressed whole (never row by row), searching between one that fits and one that does not:
    interpolating on the compressed size, which grows almost linearly, alternating with bisection, which
    bounds the steps. Compressed sizes are not strictly monotone, so k is the largest the search met that
    fits; the returned bytes are always the ones measured. Raises ValueError when not even ``[]`` fits.
    """
    ends = _chunk_ends(row_texts, chunk_bytes)
    kept: list[bytes] = []
    used = 0
    start = 0
    for end in ends:
        opening = "[" if start == 0 else ","
        body = opening + ",".join(row_texts[start:end])
        if end == len(row_texts):
            whole = _compress(body + "]")
            if used + len(whole) <= room:
                return end, b"".join(kept) + whole
            return _fit_in_chunk(row_texts, start, end, kept, room - used, len(whole))
        chunk = _compress(body)
        if used + len(chunk) + len(_compress("]")) > room:
            return _fit_in_chunk(row_texts, start, end, kept, room - used, len(chunk))
        kept.append(chunk)
        used += len(chunk)
        start = end
    return _fit_in_chunk(row_texts, start, start, kept, room - used, 0)


def _chunk_ends(row_texts: list[str], chunk_bytes: int) -> list[int]:
    """Row index ending each chunk: rows (plus separators) of about ``chunk_bytes``, at least one row each."""
    if not row_texts:
        return []
    sums = pc.cumulative_sum(pc.add(pc.binary_length(pa.array(row_texts, type=pa.large_string())), 1))
    totals = sums.to_pylist()
    ends: list[int] = []
    start = 0
    while start < len(totals):
        before = totals[start - 1] if start else 0
        end = max(start + 1, bisect.bisect_right(totals, before + chunk_bytes, lo=start))
        ends.append(end)
        start = end
    return ends


def _fit_in_chunk(
    row_texts: list[str], start: int, end: int, kept: list[bytes], room: int, end_size: int
) -> tuple[int, bytes]:
    """Rows ``start..k`` of the chunk ``start..end`` (which does not fit whole) in one closing stream."""

    def closing(k: int) -> bytes:
        if k == start:
            return _compress("[]" if start == 0 else "]")
        return _compress(("[" if start == 0 else ",") + ",".join(row_texts[start:k]) + "]")

    lo, lo_blob = start, closing(start)
    if len(lo_blob) > room:
        raise ValueError(f"the item has no room for rows ({room} bytes left)")
    hi, hi_size = end, end_size
    interpolate = True
    while hi - lo > 1:
        if interpolate and hi_size > len(lo_blob):
            guess = lo + (hi - lo) * (room - len(lo_blob)) // (hi_size - len(lo_blob))
        else:
            guess = (lo + hi) // 2
        guess = min(max(guess, lo + 1), hi - 1)
        blob = closing(guess)
        if len(blob) <= room:
            lo, lo_blob = guess, blob
        else:
            hi, hi_size = guess, len(blob)
        interpolate = not interpolate
    return lo, b"".join(kept) + lo_blob
