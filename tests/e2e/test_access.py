"""Who may ask what, over real HTTP on the local stack: managed keys made with the `queryall keys` CLI,
bucket scope on every route, ownership, and revocation."""

from __future__ import annotations

import json

import pytest

from tests.conftest import API_KEY, Api
from tests.e2e.test_client_cli import run_cli

pytestmark = pytest.mark.timeout(300)


def create_key(api: Api, *args: str, admin_key: str = API_KEY) -> dict:
    done = run_cli(api, "keys", "create", "--api-key", admin_key, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def scoped(api: Api) -> tuple[dict, Api]:
    key = create_key(api, "--name", "scoped", "--bucket", "acme", "--bucket", "globex")
    return key, Api(api.base_url, key["secret"])


def test_a_key_is_created_once_listed_without_its_secret_and_revoked(api: Api) -> None:
    key = create_key(api, "--name", "ci", "--bucket", "acme", "--max-running", "3", "--rate", "10")
    assert key["secret"].startswith("qak_") and key["buckets"] == ["acme"] and key["admin"] is False
    assert (key["max_running"], key["rate_per_minute"]) == (3, 10)
    listed = run_cli(api, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = [k for k in json.loads(listed.stdout) if k["id"] == key["id"]]
    assert "secret" not in entry and "key_hash" not in entry and key["secret"] not in listed.stdout
    # The new key works at once.
    mine = Api(api.base_url, key["secret"])
    assert mine.request("GET", "/query-all/jobs").status == 200
    assert entry["last_used_at"] is None
    revoked = run_cli(api, "keys", "revoke", key["id"])
    assert revoked.returncode == 0 and key["id"] in revoked.stdout
    # This stack runs every function in one process, so its cache forgets the key at once; elsewhere
    # within MANAGED_KEY_CACHE_SECONDS (tests/unit/test_managed_keys.py).
    result = mine.request("GET", "/query-all/jobs")
    assert result.status == 401 and result.body["error"]["code"] == "unauthorized"
    again = [k for k in json.loads(run_cli(api, "keys", "list", "--json").stdout) if k["id"] == key["id"]]
    assert again[0]["revoked"] is True and again[0]["last_used_at"] is not None


def test_keys_routes_are_for_admins_and_bootstrap_keys_only(api: Api, scoped: tuple[dict, Api]) -> None:
    key, caller = scoped
    for method, path, body in (("GET", "/query-all/keys", None),
                               ("POST", "/query-all/keys", {"name": "x", "buckets": "*"}),
                               ("DELETE", f"/query-all/keys/{key['id']}", None)):
        result = caller.request(method, path, body)
        assert result.status == 403, (method, path, result.body)
        assert result.body["error"]["code"] == "forbidden"
    assert api.request("DELETE", "/query-all/keys/key-unknown").status == 404
    assert api.request("POST", "/query-all/keys", {"name": "x"}).status == 400
    # A wrong secret of the managed shape is refused like any wrong key.
    forged = "qak_" + "A" * 43
    assert Api(api.base_url, forged).request("GET", "/query-all/jobs").status == 401


def test_a_managed_admin_key_manages_keys_and_refreshes_the_catalog(api: Api) -> None:
    admin = create_key(api, "--name", "ops", "--admin")
    made = create_key(api, "--name", "made-by-ops", admin_key=admin["secret"])
    assert made["buckets"] == "*"
    assert Api(api.base_url, admin["secret"]).request("POST", "/query-all/catalog/refresh").status == 202
    # A bootstrap key that is not in the admin parameter still may not refresh the catalog.
    assert api.request("POST", "/query-all/catalog/refresh").status == 403
