"""How large a response body gets inside Lambda's response payload, which is capped at 6 MB.

An API function returns its body as a string inside the proxy response JSON, so the runtime writes it
escaped: every ``"`` and ``\\`` doubles and, with json.dumps' default ensure_ascii, a non-ASCII
character becomes ``\\uXXXX`` (a pair of them outside the BMP). Sizes here are counted that way, the
largest the body can become, so a budget met here is met whichever way the runtime encodes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the wait and poll functions size responses without loading pyarrow
    import pyarrow as pa

# Lambda's synchronous response cap is 6,291,456 bytes. Bodies are fitted to 5,000,000 escaped bytes:
# the proxy envelope (status, headers) needs under 1 KB, and the rest of the ~1.29 MB is margin for the
# parts added after fitting (a presigned URL, a cursor).
RESPONSE_BUDGET = 5_000_000
# Reserved for what poll adds to a stored meta (result_url with a session token, next_cursor).
LINKS_RESERVE = 8192


def escaped_size(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string written with ensure_ascii."""
    return len(json.dumps(text)) - 2


def escaped_lengths(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`escaped_size` of every string, vectorised (no per-row Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    non_ascii = pc.count_substring_regex(texts, r"[^\x00-\x7f]")
    astral = pc.count_substring_regex(texts, r"[\x{10000}-\x{10FFFF}]")
    # Control characters and DEL: \uXXXX at most (\n and friends take two).
    controls = pc.count_substring_regex(texts, r"[\x00-\x1f\x7f]")
    doubled = pc.add(pc.count_substring(texts, '"'), pc.count_substring(texts, "\\"))
    ascii_chars = pc.subtract(pc.utf8_length(texts), non_ascii)
    size = pc.add(ascii_chars, doubled)
    size = pc.add(size, pc.multiply(controls, 5))
    size = pc.add(size, pc.multiply(pc.subtract(non_ascii, astral), 6))
    return pc.cast(pc.add(size, pc.multiply(astral, 12)), pa.int64())
