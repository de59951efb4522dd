"""The one way JSON a caller sent is read: request bodies, and JSON inside a query parameter.

`json.loads` alone fails on hostile input with errors that are not `JSONDecodeError` (a body that is not
UTF-8, nesting deep enough to exhaust the parser's recursion, an integer past Python's 4,300-digit
conversion limit), and those became 500s. Here every one of them is an `InvalidRequest` naming what is
wrong, and what passes is shallow enough for pydantic and everything after it to walk safely.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from queryall.errors import InvalidRequest

# The deepest request the API defines is 2 levels (an object holding a list); this leaves room for any
# future shape and stays far below the interpreter's recursion limit.
MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def text(data: bytes, source: str = "Request body") -> str:
    """`data` as text: JSON is UTF-8 (RFC 8259), whatever charset the caller declared."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{source} is not valid UTF-8 (send JSON encoded as UTF-8)") from None


def loads(data: str | bytes, source: str = "Request body") -> Any:
    """The JSON value in `data`; `InvalidRequest` (naming `source`) for anything that is not plain JSON."""
    document = text(data, source) if isinstance(data, bytes | bytearray) else data
    try:
        value = json.loads(document)
    except RecursionError:
        raise InvalidRequest(f"{source} nests JSON more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError:
        raise InvalidRequest(f"{source} is not valid JSON") from None
    except ValueError:  # the only other ValueError json raises: an integer past the conversion limit
        raise InvalidRequest(f"{source} has a number with more than {sys.get_int_max_str_digits()} digits") from None
    _check(value, source)
    return value


def _check(value: Any, source: str) -> None:
    """Depth and text of every part of `value`, without recursion (the depth is what is checked)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidRequest(f"{source} holds an escaped lone surrogate, which is not text")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"{source} nests JSON more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        else:
            pending.extend((child, depth + 1) for child in item)
