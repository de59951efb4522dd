"""One cursor codec for every paged route, the same checks for each: round trip, tampering, a cursor of
another route or scope, garbage. Each route's codec is tried, through the functions the routes call."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from queryall.errors import InvalidRequest
from queryall.logic import catalog, job_history, paging
from queryall.logic.cursors import MAX_CURSOR_LENGTH, CursorCodec

JOB = "503a73be-9119-43ba-8e30-4f278f978d49"


@dataclass(frozen=True)
class Route:
    name: str
    codec: CursorCodec
    values: tuple[str, ...]
    scope: str
    decode: Callable[[str], object]  # what the route itself calls


ROUTES = [
    Route("results", paging._CURSORS, ("10000",), JOB, lambda c: paging.decode_cursor(c, JOB)),
    Route("jobs", job_history._CURSORS, ("2026-01-02T03:04:05.678Z", JOB), "", job_history.decode_cursor),
    Route("databases", catalog._CURSORS, ("tenant-0042",), "", lambda c: catalog._CURSORS.decode(c)),
]
ids = [route.name for route in ROUTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_a_cursor_round_trips_as_short_url_safe_text(route: Route) -> None:
    cursor = route.codec.encode(route.values, scope=route.scope)
    assert route.codec.decode(cursor, scope=route.scope) == route.values
    route.decode(cursor)  # the route accepts it
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(cursor) <= MAX_CURSOR_LENGTH


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_a_cursor_changed_anywhere_is_rejected(route: Route) -> None:
    cursor = route.codec.encode(route.values, scope=route.scope)
    raw = _unb64(cursor)
    # Each character swapped for another, one at a time: none is accepted as a different position.
    for index, character in enumerate(cursor):
        changed = cursor[:index] + ("A" if character != "A" else "B") + cursor[index + 1:]
        try:
            decoded = route.codec.decode(changed, scope=route.scope)
        except InvalidRequest:
            continue
        assert decoded == route.values  # only the unused low bits of the last character may change
    # A value edited and the text re-encoded (with the old digest): rejected.
    body = raw[6:].replace(route.values[-1][-1].encode(), b"9" if route.values[-1][-1] != "9" else b"8")
    assert body != raw[6:]
    with pytest.raises(InvalidRequest, match="cursor is not valid"):
        route.decode(_b64(raw[:6] + body))
    # Cut short, or with something appended.
    for tampered in [cursor[:-4], cursor + "AAAA", cursor[4:]]:
        with pytest.raises(InvalidRequest, match="cursor"):
            route.decode(tampered)


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_a_cursor_of_another_route_is_rejected(route: Route) -> None:
    for other in ROUTES:
        if other is route:
            continue
        with pytest.raises(InvalidRequest, match="cursor is not valid"):
            route.decode(other.codec.encode(other.values, scope=other.scope))
    # Even with values that would fit this route: the kind is checked.
    impostor = CursorCodec("elsewhere", route.codec.fields)
    with pytest.raises(InvalidRequest, match="another route"):
        route.decode(impostor.encode(route.values, scope=route.scope))


def test_a_results_cursor_of_another_job_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="another job"):
        paging.decode_cursor(paging.encode_cursor(str(uuid.uuid4()), 5), JOB)


def _well_digested(payload: object) -> str:
    from queryall.logic.cursors import _digest

    body = json.dumps(payload).encode()
    return _b64(_digest(body) + body)


@pytest.mark.parametrize("route", ROUTES, ids=ids)
@pytest.mark.parametrize("cursor", [
    "", "not base64!", "x" * (MAX_CURSOR_LENGTH + 1), "%%%%", "====", "é", "zzz", "W10", "\x00",
    _b64(b"\xff\xfe\x00" * 4),
    _b64(b"v1:" + JOB.encode() + b":5"),  # the old results format
    _b64(json.dumps(["2026-01-02T03:04:05.678Z", JOB]).encode()),  # the old jobs format
    _b64(b"tenant-0042"),  # the old databases format
    _well_digested("v1"), _well_digested({"v1": 1}), _well_digested([]),
    _well_digested(["v2", "results", JOB, "5"]),  # unknown version
])
def test_garbage_is_an_invalid_request(route: Route, cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor is not valid"):
        route.decode(cursor)


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_well_formed_cursors_with_values_out_of_their_fields_are_rejected(route: Route) -> None:
    bad_values = {"results": [["-5"], ["05"], ["5.0"], [""], ["1" + "0" * 18], ["5", "6"]],
                  "jobs": [["yesterday", JOB], ["2026-01-02T03:04:05.678Z", "x"], ["2026-01-02T03:04:05.678Z"]],
                  "databases": [["-lead"], ["x" * 64], ["a b"], [5], ["tenant\n"]]}[route.name]
    for values in bad_values:
        with pytest.raises(InvalidRequest, match="cursor is not valid"):
            route.decode(_well_digested(["v1", route.name, route.scope, *values]))
