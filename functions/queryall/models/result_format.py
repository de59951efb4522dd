"""The `format` a poll or results page answers in (a query parameter, and the result files' formats)."""

from __future__ import annotations

from enum import StrEnum


class ResultFormat(StrEnum):
    """How a response carries the result: `json` rows, a base64 `arrow` IPC stream, or (`csv`,
    `parquet`) JSON rows plus `meta.result_url` pointing at the full result in that format."""

    JSON = "json"
    ARROW = "arrow"
    CSV = "csv"
    PARQUET = "parquet"


FORMAT_DESCRIPTION = (
    "json (default): rows as JSON arrays. arrow: the same rows as a base64 Arrow IPC stream in data.result. "
    "csv, parquet: JSON rows, with meta.result_url pointing at the full result in that format."
)
