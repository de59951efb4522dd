"""Cursors of every paged route: one format, one set of checks on the way back in.

A cursor is base64url (unpadded) of a 6-byte digest followed by the JSON text
``["v1", <kind>, <scope>, <value>, ...]``. The kind names the route that made it, so a cursor of one
listing is never read by another; the scope names what it pages through (a job for the results pages), so
a cursor of one job never pages another; each value must match its pattern. The digest (BLAKE2b, not
keyed) catches a cursor altered by hand or in transit: a changed digit, a cut or a stray character.
Cursors carry no secret and grant nothing the caller could not ask for with a fresh listing (each route
still scopes its reads to the caller), so they need no signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence

from queryall.errors import InvalidRequest

MAX_CURSOR_LENGTH = 200
INVALID = "cursor is not valid: pass next_cursor unchanged"

_VERSION = "v1"
_DIGEST_BYTES = 6
_BASE64URL = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CURSOR_LENGTH}}}")


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=_DIGEST_BYTES, person=b"queryall-cursor").digest()


class CursorCodec:
    """Cursors of one kind: ``fields`` are the patterns its values must match, in order. ``scope_name``
    names what a scope is in messages ("job": "cursor belongs to another job")."""

    def __init__(self, kind: str, fields: Sequence[re.Pattern[str]], scope_name: str = "listing") -> None:
        self.kind = kind
        self.fields = tuple(fields)
        self.scope_name = scope_name

    def encode(self, values: Sequence[str], scope: str = "") -> str:
        """The cursor of ``values``; not checked here (decode checks every cursor it is given)."""
        body = json.dumps([_VERSION, self.kind, scope, *values], separators=(",", ":")).encode()
        cursor = base64.urlsafe_b64encode(_digest(body) + body).decode("ascii").rstrip("=")
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError(f"{self.kind} cursor would be longer than {MAX_CURSOR_LENGTH} characters")
        return cursor

    def decode(self, cursor: str, scope: str = "") -> tuple[str, ...]:
        """The values of a cursor this codec made for ``scope``; InvalidRequest for anything else."""
        if not isinstance(cursor, str) or not _BASE64URL.fullmatch(cursor):
            raise InvalidRequest(INVALID)
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidRequest(INVALID) from None
        digest, body = raw[:_DIGEST_BYTES], raw[_DIGEST_BYTES:]
        if not body or not hmac.compare_digest(digest, _digest(body)):
            raise InvalidRequest(INVALID)
        try:
            value = json.loads(body)
        except ValueError:  # also undecodable bytes
            raise InvalidRequest(INVALID) from None
        if not (isinstance(value, list) and len(value) == 3 + len(self.fields)
                and all(isinstance(part, str) for part in value) and value[0] == _VERSION):
            raise InvalidRequest(INVALID)
        if value[1] != self.kind:
            raise InvalidRequest(f"{INVALID} (it is a cursor of another route)")
        if not all(map(_matches, self.fields, value[3:])):
            raise InvalidRequest(INVALID)
        if value[2] != scope:
            raise InvalidRequest(f"cursor belongs to another {self.scope_name}")
        return tuple(value[3:])


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None
