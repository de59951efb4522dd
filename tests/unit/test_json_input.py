"""json_input.loads: every way JSON from a caller can be hostile is an InvalidRequest naming its source."""

from __future__ import annotations

import pytest

from queryall.errors import InvalidRequest
from queryall.logic.json_input import MAX_DEPTH, loads


@pytest.mark.parametrize(("data", "needle"), [
    (b'{"sql":"SELECT \xff\xfe 1"}', "UTF-8"),
    ('{"a":1}'.encode("utf-16"), "UTF-8"),
    (b"\x92", "UTF-8"),
    ("[" * 100_000 + "]" * 100_000, "levels deep"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "levels deep"),
    ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "levels deep"),
    ('{"limit":' + "9" * 5_001 + "}", "digits"),
    ("{not json", "not valid JSON"),
    ('{"sql":"SELECT \'\\ud800\'"}', "surrogate"),
    ('{"\\udfff":1}', "surrogate"),
])
def test_hostile_json_is_an_invalid_request(data: str | bytes, needle: str) -> None:
    with pytest.raises(InvalidRequest, match=needle) as raised:
        loads(data, source="The body")
    assert raised.value.message.startswith("The body")


def test_plain_json_reads_as_json_loads_reads_it() -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(deepest) is not None
    assert loads('{"sql":"SELECT \'é\' 😀","limit":' + "9" * 4_000 + "}")["sql"] == "SELECT 'é' 😀"
    assert loads(b'{"a":[1,2.5,null,true]}') == {"a": [1, 2.5, None, True]}
