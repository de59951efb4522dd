"""Who may ask what, over real HTTP on the local stack: managed keys made with the `queryall keys` CLI,
bucket scope on every route, ownership, and revocation."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

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


# ----------------------------------------------------------------------------- bucket scope

SCOPE = ["acme", "globex", "ghost"]  # ghost: in scope, but no tenant database has that name


@pytest.fixture(scope="module")
def tables_by_bucket(api: Api, local_stack) -> dict[str, set[str]]:
    admin = Api(api.base_url, local_stack.admin_api_key)
    assert admin.request("POST", "/query-all/catalog/refresh").status == 202
    local_stack.runtime.wait_for_background(timeout=120)
    found: dict[str, set[str]] = {}
    cursor = ""
    while True:
        page = api.request("GET", f"/query-all/databases?limit=1000{cursor}").body
        found |= {entry["bucket"]: {t["name"] for t in entry["tables"]} for entry in page["data"]}
        if not page["meta"]["next_cursor"]:
            return found
        cursor = f"&cursor={page['meta']['next_cursor']}"


@pytest.fixture(scope="module")
def narrow(api: Api) -> Api:
    key = create_key(api, "--name", "narrow", *[arg for b in SCOPE for arg in ("--bucket", b)])
    return Api(api.base_url, key["secret"])


def test_naming_a_bucket_outside_the_scope_is_403_before_any_job(narrow: Api) -> None:
    before = narrow.request("GET", "/query-all/jobs").body["data"]["jobs"]
    result = narrow.request("POST", "/query-all",
                            {"sql": "SELECT 1 AS one", "buckets": ["acme", "northwind", "zeta"]})
    assert result.status == 403
    assert result.body == {"error": {"code": "forbidden", "message": "Access denied to bucket 'northwind'"}}
    # Even a request that would fail later (bad SQL) names the bucket first, and no job was made.
    assert narrow.request("POST", "/query-all", {"sql": "DROP TABLE x", "buckets": ["initech"]}).status == 403
    assert narrow.request("GET", "/query-all/jobs").body["data"]["jobs"] == before


def test_a_scoped_caller_without_buckets_queries_exactly_its_tenants(narrow: Api) -> None:
    body = narrow.run({"sql": "SELECT count(*) AS n FROM person"})
    assert sorted(row[0] for row in body["data"]["rows"]) == ["acme", "globex"]
    meta = body["meta"]
    assert meta["databases_queried"] == 2 and meta["errors"] == {} and meta["skipped"] == []
    # Naming its buckets, including one without a database, reports only those.
    body = narrow.run({"sql": "SELECT 1 AS one", "buckets": ["ghost", "acme"]})
    assert [row[0] for row in body["data"]["rows"]] == ["acme"] and list(body["meta"]["errors"]) == ["ghost"]


def test_progress_and_history_count_only_tenants_in_scope(narrow: Api) -> None:
    job_id = narrow.submit({"sql": "SELECT count(*) AS n FROM person"})
    narrow.wait(job_id)
    [listed] = [job for job in narrow.request("GET", "/query-all/jobs").body["data"]["jobs"]
                if job["job_id"] == job_id]
    assert listed["status"] == "completed"
    polled = narrow.request("GET", f"/query-all/jobs/{job_id}").body["meta"]
    assert polled["databases_queried"] + polled["databases_skipped"] + polled["databases_errored"] == 2


def test_a_table_only_other_tenants_have_is_unknown_to_a_scoped_caller(
    api: Api, tables_by_bucket: dict[str, set[str]]
) -> None:
    from queryall_local.seed import bucket_names, missing_tables

    lacking = bucket_names(28)[27]  # the seed leaves out both optional tables at every 28th tenant
    table = sorted(missing_tables(28))[0]
    assert table not in tables_by_bucket[lacking] and any(table in t for t in tables_by_bucket.values())
    key = create_key(api, "--name", "lacking", "--bucket", lacking)
    caller = Api(api.base_url, key["secret"])
    result = caller.request("POST", "/query-all", {"sql": f"SELECT * FROM {table}", "table": table})
    assert result.status == 404
    assert result.body == {"error": {"code": "not_found", "message": f"Unknown table: {table}"}}
    assert api.request("POST", "/query-all", {"sql": f"SELECT * FROM {table}", "table": table}).status == 202
    assert caller.request("POST", "/query-all", {"sql": "SELECT 1 FROM person", "table": "person"}).status == 202


def test_databases_lists_only_tenants_in_scope(narrow: Api, tables_by_bucket: dict[str, set[str]]) -> None:
    page = narrow.request("GET", "/query-all/databases?limit=1").body
    assert [entry["bucket"] for entry in page["data"]] == ["acme"] and page["meta"]["next_cursor"]
    rest = narrow.request("GET", f"/query-all/databases?cursor={page['meta']['next_cursor']}").body
    assert [entry["bucket"] for entry in rest["data"]] == ["globex"] and rest["meta"]["next_cursor"] is None
    assert set(page["meta"]["tables"]) == tables_by_bucket["acme"] | tables_by_bucket["globex"]


def test_jobs_are_their_owners_and_admins_see_others_only_with_all(api: Api, narrow: Api, local_stack) -> None:
    theirs = api.submit({"sql": "SELECT 1 AS one", "buckets": ["acme"]})
    mine = narrow.submit({"sql": "SELECT 1 AS one", "buckets": ["acme"]})
    for method, path in (("GET", f"/query-all/jobs/{theirs}"), ("GET", f"/query-all/jobs/{theirs}/results"),
                         ("DELETE", f"/query-all/jobs/{theirs}")):
        assert narrow.request(method, path).status == 404, (method, path)
    waited = narrow.request("GET", f'/query-all/wait?job_ids=["{theirs}"]&timeout_seconds=0').body["data"]
    assert waited["unknown_job_ids"] == [theirs]
    assert theirs not in {job["job_id"] for job in narrow.request("GET", "/query-all/jobs").body["data"]["jobs"]}
    # ?all=true: admins only, and only when asked.
    assert narrow.request("GET", "/query-all/jobs?all=true").status == 403
    assert api.request("GET", "/query-all/jobs?all=true").status == 403  # a bootstrap key is not an admin
    admin = Api(api.base_url, local_stack.admin_api_key)
    assert mine not in {job["job_id"] for job in admin.request("GET", "/query-all/jobs").body["data"]["jobs"]}
    everyone = admin.request("GET", "/query-all/jobs?all=true&limit=100").body["data"]["jobs"]
    owners = {job["job_id"]: job["owner"] for job in everyone}
    assert mine in owners and theirs in owners and owners[mine] != owners[theirs]
    assert admin.request("GET", f"/query-all/jobs/{mine}").status == 404  # reading it still needs ownership


# ----------------------------------------------------------------------------- idempotent submit


def submit_with_key(caller: Api, body: dict, key: str) -> tuple[int, dict]:
    result = caller.request("POST", "/query-all", body, headers={"Idempotency-Key": key}, timeout=60)
    return result.status, result.body


def executions_of(local_stack, job_ids: set[str]) -> int:
    import boto3

    sfn = boto3.client("stepfunctions", endpoint_url=local_stack.moto_url, region_name="us-east-1")
    found = 0
    for machine in sfn.list_state_machines()["stateMachines"]:
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine["stateMachineArn"]):
            found += sum(1 for e in page["executions"] if e["name"] in job_ids)
    return found


def test_a_retry_with_the_same_idempotency_key_returns_the_same_job(api: Api, local_stack) -> None:
    caller = Api(api.base_url, create_key(api, "--name", "retrier")["secret"])
    body = {"sql": "SELECT 42 AS answer", "buckets": ["acme"]}
    status, first = submit_with_key(caller, body, "order-1")
    assert status == 202
    status, again = submit_with_key(caller, dict(reversed(body.items())), "order-1")  # same body, other order
    assert status == 202 and again == first
    status, conflict = submit_with_key(caller, {**body, "limit": 5}, "order-1")
    assert status == 409
    assert conflict == {"error": {"code": "conflict", "message": "Idempotency-Key reused with a different request"}}
    # The key is the caller's own: another caller with the same key gets its own job.
    status, others = submit_with_key(api, body, "order-1")
    assert status == 202 and others["data"]["job_id"] != first["data"]["job_id"]
    jobs = caller.request("GET", "/query-all/jobs").body["data"]["jobs"]
    assert [job["job_id"] for job in jobs] == [first["data"]["job_id"]]
    assert submit_with_key(caller, body, "x" * 256)[0] == 400
    assert submit_with_key(caller, body, "tab\tinside")[0] == 400
    # A request that fails leaves nothing behind: its retry is checked again.
    assert submit_with_key(caller, {"sql": "DROP TABLE t"}, "order-2")[0] == 400
    assert submit_with_key(caller, body, "order-2")[0] == 202


def test_twenty_concurrent_identical_submits_start_one_execution(api: Api, local_stack) -> None:
    caller = Api(api.base_url, create_key(api, "--name", "burst")["secret"])
    body = {"sql": "SELECT 'burst' AS word", "buckets": ["acme", "globex"]}
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: submit_with_key(caller, body, "burst-1"), range(20)))
    assert {status for status, _ in answers} == {202}, answers
    job_ids = {answer["data"]["job_id"] for _, answer in answers}
    assert len(job_ids) == 1
    assert [job["job_id"] for job in caller.request("GET", "/query-all/jobs").body["data"]["jobs"]] == list(job_ids)
    assert executions_of(local_stack, job_ids) == 1
    assert caller.wait(job_ids.pop())["meta"]["databases_queried"] == 2


# ----------------------------------------------------------------------------- quotas

# About five seconds of one core on one tenant: long enough to still be running when a burst is over.
SLOW_SQL = "SELECT count(*) AS n FROM event a, event b, person c WHERE c.id <= 100 AND hash(a.id + b.id + c.id) % 3 = 0"


def burst(caller: Api, body: dict, count: int) -> list:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: caller.request("POST", "/query-all", body), range(count)))


def test_fifty_concurrent_submits_never_run_more_than_the_limit(api: Api) -> None:
    caller = Api(api.base_url, create_key(api, "--name", "busy", "--max-running", "3", "--rate", "1000")["secret"])
    answers = burst(caller, {"sql": SLOW_SQL, "buckets": ["acme"]}, 50)
    accepted = [a.body["data"]["job_id"] for a in answers if a.status == 202]
    limited = [a for a in answers if a.status == 429]
    assert len(accepted) + len(limited) == 50, {a.status for a in answers}
    states = [caller.request("GET", f"/query-all/jobs/{job_id}").body["data"].get("status") for job_id in accepted]
    ended = sum(1 for state in states if state != "processing")
    assert 3 <= len(accepted) <= 3 + ended, (len(accepted), states)
    print(f"quota burst: {len(accepted)} accepted, {len(limited)} limited, {ended} ended during the burst")
    for answer in limited:
        assert answer.body["error"] == {"code": "rate_limited",
                                        "message": "Limit reached: at most 3 running jobs at once"}
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
    # A job that ends (here: cancelled) gives its slot back; refused submits left no job behind.
    running = [job_id for job_id in accepted if caller.request("GET", f"/query-all/jobs/{job_id}").body["data"].get(
        "status") == "processing"]
    if len(running) == 3:
        assert caller.request("POST", "/query-all", {"sql": "SELECT 1 AS one", "buckets": ["acme"]}).status == 429
    assert caller.request("DELETE", f"/query-all/jobs/{accepted[0]}").status == 200
    assert caller.request("POST", "/query-all", {"sql": "SELECT 1 AS one", "buckets": ["acme"]}).status == 202
    listed = caller.request("GET", "/query-all/jobs?limit=100").body["data"]["jobs"]
    assert len(listed) == len(accepted) + 1
    for job_id in accepted[1:]:
        caller.request("DELETE", f"/query-all/jobs/{job_id}")


def test_submits_per_minute_are_limited_with_retry_after(api: Api) -> None:
    if time.time() % 60 > 45:  # the whole burst in one minute
        time.sleep(61 - time.time() % 60)
    caller = Api(api.base_url, create_key(api, "--name", "chatty", "--rate", "5", "--max-running", "100")["secret"])
    answers = burst(caller, {"sql": "SELECT 1 AS one", "buckets": ["acme"]}, 20)
    assert sorted(a.status for a in answers) == [202] * 5 + [429] * 15
    for answer in (a for a in answers if a.status == 429):
        assert answer.body["error"] == {"code": "rate_limited",
                                        "message": "Rate limit reached: at most 5 submits per minute"}
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
