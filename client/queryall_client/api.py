"""The queryall HTTP API, as the client commands use it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

# The longest wait the API holds a request (25 s) plus room for the round trip.
_TIMEOUT = httpx.Timeout(35.0, connect=5.0)


class ApiError(Exception):
    """The API answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def parse_json(text: str | bytes) -> Any:
    # Decimals keep the exact digits the API sent (`10.00`, `0.1`).
    return json.loads(text, parse_float=Decimal)


class QueryAllClient:
    def __init__(self, base_url: str, api_key: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers={"x-api-key": api_key}, timeout=_TIMEOUT,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> QueryAllClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, body: dict[str, Any]) -> str:
        return self._json("POST", "/query-all", json=body)["data"]["job_id"]

    def preview_sql(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /query-all/sql: the SQL a question would run ({"sql", "tables"}), nothing run."""
        return self._json("POST", "/query-all/sql", json=body)["data"]

    def job_text(self, job_id: str) -> str:
        """GET /query-all/jobs/{jobId}, as the exact JSON text the API sent."""
        return self._send("GET", f"/query-all/jobs/{job_id}").text

    def job(self, job_id: str) -> dict[str, Any]:
        return parse_json(self.job_text(job_id))

    def wait(self, job_ids: list[str], timeout_seconds: float) -> dict[str, Any]:
        params = {"job_ids": json.dumps(job_ids), "timeout_seconds": f"{timeout_seconds:g}"}
        return self._json("GET", "/query-all/wait", params=params)["data"]

    def results_page(self, job_id: str, cursor: str) -> dict[str, Any]:
        """GET /query-all/jobs/{jobId}/results: one page of the full result, from a cursor."""
        return self._json("GET", f"/query-all/jobs/{job_id}/results", params={"cursor": cursor})

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/query-all/jobs/{job_id}")["data"]

    def jobs(self, limit: int, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._json("GET", "/query-all/jobs", params=params)["data"]

    def create_key(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/query-all/keys", json=body)["data"]

    def keys(self) -> list[dict[str, Any]]:
        return self._json("GET", "/query-all/keys")["data"]

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/query-all/keys/{key_id}")["data"]

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return parse_json(self._send(method, path, **kwargs).content)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ApiError(0, "unreachable", f"cannot reach {self.base_url}: {error}") from None
        if response.is_success:
            return response
        try:
            detail = response.json()["error"]
            code, message = str(detail["code"]), str(detail["message"])
        except (ValueError, KeyError, TypeError):  # not the API's error envelope (a proxy, a gateway)
            code, message = "http_error", f"HTTP {response.status_code}: {response.text[:200]}"
        raise ApiError(response.status_code, code, message)
