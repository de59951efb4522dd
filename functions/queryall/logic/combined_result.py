"""Merging the per-batch partial results into one table, with pyarrow and no per-row Python.

Every partial starts with a string column ``_bucket``; each tenant's rows are contiguous and in the
tenant's original order. The merged table has:

* ``_bucket`` first (as ``string``), then the query's columns in first-seen order (the union of names;
  a column a partial lacks is null there). A name repeated within one result (``SELECT 1 a, 2 a``)
  stays repeated: the n-th ``a`` of one partial lines up with the n-th ``a`` of another.
* One type per column, promoted across partials:

  - null-typed columns take the other partials' type;
  - dictionary (ENUM) columns are decoded to their value type first;
  - integers widen (int8/16/32 + int64 -> int64; unsigned + signed -> the next signed width that
    holds both; uint64 + signed -> decimal128(20,0), as DuckDB widens UBIGINT + BIGINT to HUGEINT);
  - any float among numbers -> float64;
  - decimals and integers -> a decimal128 wide enough for every integer digit and the largest scale;
  - string / large_string / string_view -> string (large_string if any input is);
    binary likewise;
  - timestamps of one kind (all naive, or all zoned) -> the finest unit (zoned ones in UTC);
    times -> the finest unit; date32 + date64 -> date32;
  - nested types (list, struct, map, ...) -> pyarrow's permissive unification when every partial
    casts to it safely.

  Anything else -- no common type, a decimal needing more than 38 digits (DuckDB cannot read
  decimal256), or a cast that would overflow -- becomes ``string`` in every partial, holding DuckDB's
  VARCHAR text of each value (``CAST(x AS VARCHAR)``, TimeZone UTC). That keeps the result
  deterministic and loses nothing a reader could not see in the JSON anyway.
* Rows ordered by ``_bucket`` ascending, ties in their original order (a stable sort).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

__all__ = ["BUCKET_COLUMN", "ipc_stream", "merge_partials"]

BUCKET_COLUMN = "_bucket"

_MAX_DECIMAL128_PRECISION = 38
# Decimal digits needed for every value of each integer width.
_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}
_UINT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 20}
_SIGNED_BY_WIDTH = {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}
_UNSIGNED_BY_WIDTH = {8: pa.uint8(), 16: pa.uint16(), 32: pa.uint32(), 64: pa.uint64()}
_TIME_UNITS = ("s", "ms", "us", "ns")


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Decode dictionaries (ENUM) so partials with different dictionaries unify as plain values."""
    if pat.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _finest_unit(types: Sequence[pa.DataType]) -> str:
    return max((t.unit for t in types), key=_TIME_UNITS.index)


def _unify_integers(types: Sequence[pa.DataType]) -> pa.DataType:
    signed = [t.bit_width for t in types if pat.is_signed_integer(t)]
    unsigned = [t.bit_width for t in types if pat.is_unsigned_integer(t)]
    if not signed:
        return _UNSIGNED_BY_WIDTH[max(unsigned)]
    width = max(signed + [2 * w for w in unsigned])  # uint8 needs int16 to stay exact, and so on
    return _SIGNED_BY_WIDTH[width] if width <= 64 else pa.decimal128(20, 0)


def _unify_decimals(types: Sequence[pa.DataType]) -> pa.DataType | None:
    scale, integer_digits = 0, 0
    for t in types:
        if pat.is_decimal(t):
            scale = max(scale, t.scale)
            integer_digits = max(integer_digits, t.precision - t.scale)
        else:
            table = _INT_DIGITS if pat.is_signed_integer(t) else _UINT_DIGITS
            integer_digits = max(integer_digits, table[t.bit_width])
    precision = integer_digits + scale
    return pa.decimal128(precision, scale) if precision <= _MAX_DECIMAL128_PRECISION else None


def _has_decimal256(t: pa.DataType) -> bool:
    if pat.is_decimal256(t):
        return True
    return any(_has_decimal256(t.field(i).type) for i in range(t.num_fields))


def _common_type(types: Sequence[pa.DataType]) -> pa.DataType | None:
    """The promoted type for one column across partials, or None when it must become string."""
    distinct = list(dict.fromkeys(t for t in types if not pat.is_null(t)))
    if not distinct:
        return pa.null()
    if len(distinct) == 1:
        return distinct[0]
    if all(pat.is_integer(t) for t in distinct):
        return _unify_integers(distinct)
    if all(pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t) for t in distinct):
        if any(pat.is_floating(t) for t in distinct):
            return pa.float64()
        return _unify_decimals(distinct)
    if all(pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t) for t in distinct):
        return pa.large_string() if any(pat.is_large_string(t) for t in distinct) else pa.string()
    if all(pat.is_binary(t) or pat.is_large_binary(t) or pat.is_binary_view(t) for t in distinct):
        return pa.large_binary() if any(pat.is_large_binary(t) for t in distinct) else pa.binary()
    if all(pat.is_timestamp(t) for t in distinct):
        zones = {t.tz is not None for t in distinct}
        if len(zones) != 1:
            return None  # a naive and a zoned timestamp are different things
        return pa.timestamp(_finest_unit(distinct), tz="UTC" if zones == {True} else None)
    if all(pat.is_time(t) for t in distinct):
        unit = _finest_unit(distinct)
        return pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)
    if all(pat.is_date(t) for t in distinct):
        return pa.date32()
    if all(pat.is_duration(t) for t in distinct):
        return pa.duration(_finest_unit(distinct))
    if all(pat.is_nested(t) for t in distinct):
        try:
            schema = pa.unify_schemas([pa.schema([("x", t)]) for t in distinct], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        unified = schema.field("x").type
        return None if _has_decimal256(unified) else unified
    return None


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """DuckDB's VARCHAR text of every value (works for nested types, which pyarrow cannot cast)."""
    if pat.is_null(column.type):
        return pa.chunked_array([pa.nulls(len(column), pa.string())])
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        rel = con.from_arrow(pa.table({"v": column}))
        # preserve_insertion_order (the default) keeps the row order of a plain projection.
        result = rel.project('CAST("v" AS VARCHAR) AS v').to_arrow_table().column(0)
    finally:
        con.close()
    return result.cast(pa.string())


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    try:
        return column.cast(target)
    except pa.ArrowInvalid:
        if not pat.is_floating(target):
            raise
        # Promoting to float64 means accepting rounding of integers beyond 2**53, as DuckDB does.
        return column.cast(target, safe=False)


def _keyed_columns(table: pa.Table) -> dict[tuple[str, int], pa.ChunkedArray]:
    """Columns keyed by (name, occurrence) so repeated names line up across partials."""
    seen: dict[str, int] = {}
    keyed: dict[tuple[str, int], pa.ChunkedArray] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        keyed[(name, occurrence)] = _plain(column)
    return keyed


def merge_partials(tables: list[pa.Table]) -> pa.Table:
    """Merge partial results (each with ``_bucket`` first) into one table sorted by ``_bucket``."""
    bucket_key = (BUCKET_COLUMN, 0)
    partials = [_keyed_columns(t) for t in tables]
    for keyed in partials:
        if next(iter(keyed), None) != bucket_key:
            raise ValueError(f"every partial result must start with a '{BUCKET_COLUMN}' column")
    keys = list(dict.fromkeys(key for keyed in partials for key in keyed))
    if not keys:
        return pa.table({BUCKET_COLUMN: pa.array([], pa.string())})

    merged: list[pa.ChunkedArray] = []
    for key in keys:
        present = [keyed[key] for keyed in partials if key in keyed]
        target = pa.string() if key == bucket_key else _common_type([c.type for c in present])
        pieces: list[pa.ChunkedArray] | None = None
        if target is not None:
            try:
                pieces = [
                    _cast(keyed[key], target) if key in keyed else pa.chunked_array([pa.nulls(n, target)])
                    for keyed, n in zip(partials, (t.num_rows for t in tables), strict=True)
                ]
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                pieces = None  # e.g. uint64 values beyond int64 inside a list: fall back to text
        if pieces is None:
            pieces = [
                _as_text(keyed[key]) if key in keyed else pa.chunked_array([pa.nulls(n, pa.string())])
                for keyed, n in zip(partials, (t.num_rows for t in tables), strict=True)
            ]
        merged.append(pa.chunked_array([chunk for piece in pieces for chunk in piece.chunks], pieces[0].type))

    table = pa.Table.from_arrays(merged, names=[name for name, _occurrence in keys])
    # sort_indices is stable, so each tenant's rows keep their original order.
    order = pc.sort_indices(pa.table({"k": table.column(0)}), sort_keys=[("k", "ascending")])
    return table.take(order)


def ipc_stream(table: pa.Table) -> bytes:
    """``table`` as Arrow IPC stream bytes (partial results, and Arrow responses)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
