"""Writing a completed job's result: a table on the terminal, or CSV, JSON or an Arrow IPC file."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import IO, Any

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "csv", "arrow")


def cell_text(value: Any) -> str:
    """One value as text: exact numbers, JSON for lists and objects, empty for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def render_table(console: Console, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(header_style="bold")
    for index, name in enumerate(columns):
        values = [row[index] for row in rows if row[index] is not None]
        numeric = bool(values) and all(_is_number(value) for value in values)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(cell_text(value) for value in row))
    console.print(table)


def write_csv(stream: IO[str], columns: list[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell_text(value) for value in row] for row in rows)


def arrow_bytes(columns: list[str], rows: list[list[Any]]) -> bytes:
    """An Arrow IPC file of the rows. JSON carries no column types, so each column's type is inferred
    from its values: integers, decimals (one scale throughout), doubles, booleans, text; anything
    else (nested values, mixed types) becomes its JSON text."""
    import pyarrow as pa  # only this format needs it

    arrays = [_arrow_column(pa, [row[index] for row in rows]) for index in range(len(columns))]
    table = pa.Table.from_arrays(arrays, names=columns)
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _arrow_column(pa: Any, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    decimals = [v for v in present if isinstance(v, Decimal)]
    if decimals and all(_is_number(v) for v in present):
        exponents = {d.as_tuple().exponent for d in decimals}
        exponent = exponents.pop() if len(exponents) == 1 else None
        if isinstance(exponent, int) and exponent < 0:  # one scale throughout, as DuckDB renders a DECIMAL
            try:
                return pa.array([v if v is None else Decimal(v) for v in values], pa.decimal128(38, -exponent))
            except (pa.ArrowInvalid, OverflowError):
                pass
        return pa.array([v if v is None else float(v) for v in values], pa.float64())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([v if v is None else cell_text(v) for v in values], pa.string())
