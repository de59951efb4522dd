"""Plain S3 object reads answered straight from moto's S3 backend.

Tenant databases in the local S3 are read from the query workers: a download (a GET of the object
and one of its WAL), or DuckDB's httpfs attaching a large tenant (11 requests: a HEAD, a whole GET,
ranged GETs, the `.wal` HEAD). Through werkzeug, Flask and moto's S3 request handling each cost
~1.8 ms of CPU (2.3-2.6 ms before moto's app lookup was cached), ~1.0 ms answered here: 300 signed
GET/HEAD requests in a loop against the local server, client and server CPU together. On AWS that
work is S3's, not on the function's cores; here it shares the machine's two cores with the queries
and bounded `bench/fanout.py --backend s3`.

A request is answered here only when it is what such a reader sends: GET or HEAD, signed (SigV4)
for S3, path style, no query string, no conditional or checksum or SSE-C header, and at most one
plain byte range; the bucket unversioned, without a policy, CORS or logging, the object present
and not archived, and moto's IAM checks off (its default). Anything else, including every error
(a missing key, a range past the end), goes to moto as before. The answer is moto's own: the same
status, headers (`FakeKey.response_dict`, metadata, `Accept-Ranges`, `Content-Range`) and bytes;
`tests/unit/test_s3_reads.py` compares the two for each case.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

_CONDITIONAL = ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE",
                "HTTP_X_AMZ_CHECKSUM_MODE", "HTTP_X_MOTO_ACCOUNT_ID",
                "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_ALGORITHM")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_ARCHIVED = {"GLACIER", "DEEP_ARCHIVE"}


def is_plain_read(environ: dict[str, Any], access_key: str | None) -> bool:
    """Whether the request's own shape (not yet the bucket's) allows answering it here."""
    if access_key is None or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return False
    if environ.get("QUERY_STRING") or any(name in environ for name in _CONDITIONAL):
        return False
    path = environ.get("PATH_INFO", "")
    if not isinstance(path, str) or path.count("/") < 2 or "MOTO_ACCOUNT_ID" in os.environ:
        return False
    host = environ.get("HTTP_HOST", "")
    if not host.startswith(("127.0.0.1", "localhost")):  # virtual-host style names the bucket in the host
        return False
    byte_range = environ.get("HTTP_RANGE")
    return byte_range is None or _RANGE.match(byte_range) is not None


def answer(environ: dict[str, Any], access_key: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """Status, headers and body for a plain read (`is_plain_read`), or None: moto answers it."""
    from moto import settings
    from moto.iam.models import get_account_id_from
    from moto.s3.models import s3_backends

    if not math.isinf(settings.INITIAL_NO_AUTH_ACTION_COUNT):  # moto checks IAM: it answers
        return None
    bucket_name, _, key_name = environ["PATH_INFO"].lstrip("/").partition("/")
    backend = s3_backends[get_account_id_from(access_key)]["aws"]
    bucket = backend.buckets.get(bucket_name)
    if bucket is None or bucket.versioning_status is not None or bucket.policy is not None:
        return None
    if bucket.cors or bucket.logging:
        return None
    key = bucket.keys.get(key_name)
    if key is None or type(key).__name__ != "FakeKey" or key.storage_class in _ARCHIVED:
        return None
    headers = {**key.metadata, **key.response_dict, "Accept-Ranges": "bytes"}
    size = key.size
    begin, end = 0, size - 1
    status = 200
    byte_range = environ.get("HTTP_RANGE")
    if byte_range is not None:
        match = _RANGE.match(byte_range)
        assert match is not None
        begin = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        if begin > end:
            return None  # past the end (moto's 416) or an empty range (moto's whole object)
        if begin or end < size - 1:
            headers = {name: value for name, value in headers.items() if not name.startswith("x-amz-checksum-")}
        headers["content-range"] = f"bytes {begin}-{end}/{size}"
        headers["content-length"] = str(end - begin + 1)
        status = 206
    body = b"" if environ["REQUEST_METHOD"] == "HEAD" else _read(key, begin, end)
    headers["Access-Control-Allow-Origin"] = "*"  # what flask-cors adds to each of moto's answers
    return status, [(name, str(value)) for name, value in headers.items()], body


def _read(key: Any, begin: int, end: int) -> bytes:
    """Bytes begin..end of the object: only those, where moto's `value` copies the whole object."""
    buffer = getattr(key, "_value_buffer", None)
    if buffer is None:
        return bytes(key.value[begin:end + 1])
    with key.lock:
        buffer.seek(begin)
        return bytes(buffer.read(end - begin + 1))
