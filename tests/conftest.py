"""Shared fixtures: a seeded tenant folder and the local stack serving the real template over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "test-api-key"
# A second caller: jobs are owned by the key that submitted them.
OTHER_API_KEY = "other-test-api-key"
TENANT_COUNT = 100
CORRUPT_BUCKET = "zz_corrupt"


def _json(raw: bytes) -> object:
    # Decimals keep DuckDB's exact digits, so numbers compare exactly with DuckDB run directly.
    return json.loads(raw or b"null", parse_float=Decimal)


@dataclass
class HttpResult:
    status: int
    body: dict
    headers: dict


class Api:
    """A tiny HTTP client for the local gateway (real HTTP over loopback)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def request(
        self, method: str, path: str, body: object = None, *, api_key: str | None = "default",
        raw_body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30,
    ) -> HttpResult:
        data = raw_body if raw_body is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        key = self.api_key if api_key == "default" else api_key
        if key is not None:
            request.add_header("x-api-key", key)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return HttpResult(response.status, _json(response.read()), dict(response.headers))
        except urllib.error.HTTPError as error:
            return HttpResult(error.code, _json(error.read()), dict(error.headers))

    def submit(self, body: dict) -> str:
        result = self.request("POST", "/query-all", body)
        assert result.status == 202, result.body
        return result.body["data"]["job_id"]

    def wait(self, job_id: str, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.request("GET", f"/query-all/jobs/{job_id}")
            assert result.status == 200, result.body
            data = result.body["data"]
            if data.get("status") != "processing":
                return result.body
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} still processing after {timeout} s")

    def run(self, body: dict) -> dict:
        return self.wait(self.submit(body))


@pytest.fixture(scope="session")
def tenants_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from queryall_local.seed import seed_tenants

    directory = tmp_path_factory.mktemp("tenants")
    seed_tenants(directory, TENANT_COUNT)
    # A tenant whose file is not a database at all: it must show up in errors, not break the job.
    (directory / f"warehouse_{CORRUPT_BUCKET}.duckdb").write_bytes(b"this is not a duckdb file" * 100)
    return directory


@pytest.fixture(scope="session")
def local_stack(tenants_dir: Path):
    from queryall_local.stack import LocalStack

    stack = LocalStack(ROOT / "template.yaml", tenants_dir, [API_KEY, OTHER_API_KEY])
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def api(local_stack) -> Api:
    return Api(local_stack.url, API_KEY)
