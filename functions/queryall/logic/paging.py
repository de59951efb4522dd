"""Cursors of the results pages: the offset of the next row, scoped to its job (see logic.cursors)."""

from __future__ import annotations

import re

from queryall.logic.cursors import MAX_CURSOR_LENGTH, CursorCodec

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_CURSOR_LENGTH", "MAX_PAGE_SIZE", "decode_cursor", "encode_cursor", "next_cursor"]

DEFAULT_PAGE_SIZE = 1000
# Rows a page may ask for; wide rows are cut further by bytes so a response stays far below 6 MB.
MAX_PAGE_SIZE = 10_000

_CURSORS = CursorCodec("results", [re.compile(r"0|[1-9][0-9]{0,17}")], scope_name="job")


def encode_cursor(job_id: str, offset: int) -> str:
    return _CURSORS.encode([str(offset)], scope=job_id)


def decode_cursor(cursor: str, job_id: str) -> int:
    """The offset a cursor of ``job_id`` points at; InvalidRequest for anything else."""
    (offset,) = _CURSORS.decode(cursor, scope=job_id)
    return int(offset)


def next_cursor(job_id: str, offset: int, returned_rows: int, total_rows: int) -> str | None:
    end = offset + returned_rows
    return encode_cursor(job_id, end) if end < total_rows else None
