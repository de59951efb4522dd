"""Cursors of the results pages: opaque to callers, checked on the way back in.

A cursor is base64url of ``v1:<job id>:<offset>``. It names its job, so a cursor of one job never
pages through another; it carries no secret (the offset is not one), so it needs no signature.
"""

from __future__ import annotations

import base64
import binascii
import re

from queryall.errors import InvalidRequest

DEFAULT_PAGE_SIZE = 1000
# Rows a page may ask for; wide rows are cut further by bytes so a response stays far below 6 MB.
MAX_PAGE_SIZE = 10_000
MAX_CURSOR_LENGTH = 200

_VERSION = "v1"
_OFFSET = re.compile(r"^(0|[1-9][0-9]{0,17})$")
_BASE64URL = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_CURSOR_LENGTH}}}$")
_INVALID = "cursor is not valid: pass meta.next_cursor unchanged"


def encode_cursor(job_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_VERSION}:{job_id}:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, job_id: str) -> int:
    """The offset a cursor of ``job_id`` points at; InvalidRequest for anything else."""
    if not _BASE64URL.match(cursor):
        raise InvalidRequest(_INVALID)
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest(_INVALID) from None
    version, _, rest = text.partition(":")
    cursor_job, separator, offset = rest.rpartition(":")
    if version != _VERSION or not separator or not _OFFSET.match(offset):
        raise InvalidRequest(_INVALID)
    if cursor_job != job_id:
        raise InvalidRequest("cursor belongs to another job")
    return int(offset)


def next_cursor(job_id: str, offset: int, returned_rows: int, total_rows: int) -> str | None:
    end = offset + returned_rows
    return encode_cursor(job_id, end) if end < total_rows else None
