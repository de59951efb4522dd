"""The served OpenAPI document against the running local stack, fuzzed by schemathesis.

Every operation of `/openapi.json` gets generated requests (valid ones, and invalid ones for the checks
that expect a 4xx), with the API key; each response must not be a server error and must match the
document (status code, content type, body schema). Driven from a test with schemathesis' Python API and
hypothesis directly (its pytest plugin does not run on this pytest). The number of examples per operation
and mode comes from QUERYALL_FUZZ_EXAMPLES: a few for `make test`, many for `make fuzz`.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import API_KEY

EXAMPLES = int(os.environ.get("QUERYALL_FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Admin routes answer 403 to the ordinary key, as documented; nothing here needs an admin key.

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def schema(local_stack):
    loaded = schemathesis.openapi.from_url(f"{local_stack.url}/openapi.json", headers={"x-api-key": API_KEY},
                                           timeout=30)
    return loaded


def _operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


# What API Gateway itself answers to a request past its quotas (README, "Errors from the gateway"): the
# request never reaches the service, so the service's document does not describe the answer. The fuzzer
# draws such requests (a 10 KB query string); the answer must then be exactly API Gateway's.
GATEWAY_REFUSALS = {413: "Request Entity Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large"}


def _is_gateway_refusal(response) -> bool:
    expected = GATEWAY_REFUSALS.get(response.status_code)
    if expected is None:
        return False
    assert response.json() == {"message": expected}, response.text[:300]
    return True


def _fuzz(operation, mode: GenerationMode, base_url: str, statuses: set[int]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        # The key is not what is fuzzed here (unauthenticated requests have their own tests).
        case.headers = {**(case.headers or {}), "x-api-key": API_KEY}
        response = case.call(base_url=base_url, timeout=60)
        statuses.add(response.status_code)
        if _is_gateway_refusal(response):
            return
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(schema, local_stack, mode: GenerationMode) -> None:
    operations = _operations(schema)
    assert len(operations) >= 8
    failures: dict[str, str] = {}
    seen: dict[str, set[int]] = {}
    for operation in operations:
        try:
            _fuzz(operation, mode, local_stack.url, seen.setdefault(operation.label, set()))
        except Exception as error:  # every operation is fuzzed; all failures are reported together
            failures[operation.label] = f"{type(error).__name__}: {error}"[:3000]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    assert all(seen.values()), seen


# What the fuzzing found, pinned as plain examples so they stay fixed whatever the fuzzer draws next.


@pytest.mark.parametrize("raw", [b'{"sql":"SELECT \xff\xfe 1"}', b"\x92", b'\x06\xe9RM@\x19!'])
def test_a_body_that_is_not_utf8_is_a_400(api, raw: bytes) -> None:
    result = api.request("POST", "/query-all", raw_body=raw)
    assert result.status == 400, result.body
    assert result.body["error"]["code"] == "invalid_request"
    assert "UTF-8" in result.body["error"]["message"]
