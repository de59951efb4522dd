"""Bearer tokens over real HTTP on the local stack: RSA and EC signing keys made here, their JWKS served
here on 127.0.0.1 (rotation included), every kind of bad token, and the token's scope and admin claims."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from queryall_local.jwt_auth import BearerTokens
from tests.conftest import Api

pytestmark = pytest.mark.timeout(300)

ISSUER = "https://issuer.queryall.test/"
AUDIENCE = "queryall-api"
COOLDOWN = 0.5  # the shortest time between two fetches of the JWKS for unknown kids (5 s by default)


class Jwks:
    """A JWKS endpoint on 127.0.0.1 whose keys the test changes (rotation); counts its fetches."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.fetches += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def publish(self, kid: str, private_key: object) -> None:
        public = private_key.public_key()
        algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
        self.keys.append({**json.loads(algorithm.to_jwk(public)), "kid": kid, "use": "sig"})


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1()),
            "intruder": rsa.generate_private_key(public_exponent=65537, key_size=2048)}


@pytest.fixture(scope="module")
def jwks(keys: dict[str, object]) -> Jwks:
    served = Jwks()
    served.publish("rsa-1", keys["rsa"])
    served.publish("ec-1", keys["ec"])
    yield served
    served.server.shutdown()


@pytest.fixture(scope="module", autouse=True)
def tokens_accepted(local_stack, jwks: Jwks):
    # What `queryall local serve --jwt-issuer … --jwt-audience … --jwks-url …` configures.
    local_stack.bearer_tokens = BearerTokens(ISSUER, AUDIENCE, jwks.url, refetch_cooldown_seconds=COOLDOWN)
    yield
    local_stack.bearer_tokens = None


def token(key: object, kid: str, **claims: object) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def call(api: Api, method: str, path: str, bearer: str | None, body: object = None,
         api_key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(api.base_url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    if bearer is not None:
        request.add_header("Authorization", f"Bearer {bearer}")
    if api_key is not None:
        request.add_header("x-api-key", api_key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def run_job(api: Api, bearer: str, body: dict) -> dict:
    status, submitted = call(api, "POST", "/query-all", bearer, body)
    assert status == 202, submitted
    job_id = submitted["data"]["job_id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status, polled = call(api, "GET", f"/query-all/jobs/{job_id}", bearer)
        assert status == 200, polled
        if polled["data"].get("status") != "processing":
            return polled
        time.sleep(0.05)
    raise AssertionError("job still processing")


def test_an_rsa_token_is_scoped_to_its_buckets_claim(api: Api, keys: dict) -> None:
    bearer = token(keys["rsa"], "rsa-1", queryall_buckets=["acme", "globex"])
    body = run_job(api, bearer, {"sql": "SELECT count(*) AS n FROM person"})
    assert sorted(row[0] for row in body["data"]["rows"]) == ["acme", "globex"]
    status, denied = call(api, "POST", "/query-all", bearer, {"sql": "SELECT 1 AS one", "buckets": ["northwind"]})
    assert status == 403 and denied["error"]["message"] == "Access denied to bucket 'northwind'"
    assert call(api, "GET", "/query-all/keys", bearer)[0] == 403
    assert call(api, "GET", "/query-all/jobs?all=true", bearer)[0] == 403


def test_an_ec_token_with_a_space_separated_scope_and_the_admin_claim(api: Api, keys: dict) -> None:
    bearer = token(keys["ec"], "ec-1", sub="ops", queryall_buckets="acme globex", queryall_admin=True)
    status, page = call(api, "GET", "/query-all/databases", bearer)
    assert status == 200 and {entry["bucket"] for entry in page["data"]} <= {"acme", "globex"}
    assert call(api, "GET", "/query-all/jobs?all=true", bearer)[0] == 200
    assert call(api, "GET", "/query-all/keys", bearer)[0] == 200
    # "*" is every tenant; no claim at all is no tenant.
    everyone = token(keys["ec"], "ec-1", queryall_buckets="*")
    assert call(api, "POST", "/query-all", everyone, {"sql": "SELECT 1 AS one", "buckets": ["northwind"]})[0] == 202
    nobody = token(keys["ec"], "ec-1", sub="nobody")
    assert call(api, "POST", "/query-all", nobody, {"sql": "SELECT 1 AS one", "buckets": ["acme"]})[0] == 403
    assert run_job(api, nobody, {"sql": "SELECT 1 AS one"})["meta"]["databases_queried"] == 0


def test_jobs_belong_to_the_token_subject(api: Api, keys: dict) -> None:
    alice = token(keys["rsa"], "rsa-1", sub="alice", queryall_buckets="*")
    bob = token(keys["rsa"], "rsa-1", sub="bob", queryall_buckets="*")
    status, submitted = call(api, "POST", "/query-all", alice, {"sql": "SELECT 1 AS one", "buckets": ["acme"]})
    assert status == 202
    job_id = submitted["data"]["job_id"]
    assert call(api, "GET", f"/query-all/jobs/{job_id}", bob)[0] == 404
    assert call(api, "GET", f"/query-all/jobs/{job_id}", alice)[0] == 200
    assert call(api, "GET", f"/query-all/jobs/{job_id}", None, api_key=api.api_key)[0] == 404
    # A subject named like a bootstrap key's owner is still someone else.
    owner = call(api, "GET", "/query-all/jobs?all=true", token(keys["ec"], "ec-1", queryall_admin="true"))[1]
    assert {j["owner"] for j in owner["data"]["jobs"] if j["job_id"] == job_id} == {"token:alice"}


def _bad_tokens(keys: dict) -> dict[str, str]:
    now = int(time.time())
    good = token(keys["rsa"], "rsa-1")
    header, _, signature = good.split(".")
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}, None,
                          algorithm="none", headers={"kid": "rsa-1"})
    return {
        "expired": token(keys["rsa"], "rsa-1", iat=now - 600, exp=now - 60),
        "not yet valid": token(keys["rsa"], "rsa-1", nbf=now + 600),
        "wrongly signed": token(keys["intruder"], "rsa-1"),
        "unknown kid": token(keys["intruder"], "intruder-1"),
        "wrong issuer": token(keys["rsa"], "rsa-1", iss="https://evil.test/"),
        "wrong audience": token(keys["rsa"], "rsa-1", aud="another-api"),
        "alg none": unsigned,
        "no exp": token(keys["rsa"], "rsa-1", exp=None),
        "tampered claims": f"{header}.{jwt.utils.base64url_encode(json.dumps({'sub': 'root', 'iss': ISSUER, 'aud': AUDIENCE, 'exp': now + 300, 'queryall_admin': True}).encode()).decode()}.{signature}",  # noqa: E501
        "hs256 with the public key": jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 300},
                                                "secret-guess", algorithm="HS256", headers={"kid": "rsa-1"}),
        "malformed": "not.a.jwt",
        "garbage": "abc",
    }


@pytest.mark.parametrize("case", ["expired", "not yet valid", "wrongly signed", "unknown kid", "wrong issuer",
                                  "wrong audience", "alg none", "no exp", "tampered claims",
                                  "hs256 with the public key", "malformed", "garbage"])
def test_bad_tokens_are_401(api: Api, keys: dict, case: str) -> None:
    status, body = call(api, "GET", "/query-all/jobs", _bad_tokens(keys)[case])
    assert status == 401, (case, body)
    assert body["error"]["code"] == "unauthorized"
    # A bad token is refused even next to a good API key: the token was what the caller chose to present.
    assert call(api, "GET", "/query-all/jobs", _bad_tokens(keys)[case], api_key=api.api_key)[0] == 401


def test_a_rotated_signing_key_is_fetched_by_its_new_kid(api: Api, jwks: Jwks) -> None:
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert call(api, "GET", "/query-all/jobs", token(rotated, "rsa-2"))[0] == 401  # not published yet
    jwks.publish("rsa-2", rotated)
    time.sleep(COOLDOWN + 0.1)
    fetched = jwks.fetches
    assert call(api, "GET", "/query-all/jobs", token(rotated, "rsa-2"))[0] == 200
    assert jwks.fetches == fetched + 1
    # Known kids are served from the cache: no fetch per request.
    assert call(api, "GET", "/query-all/jobs", token(rotated, "rsa-2"))[0] == 200
    assert jwks.fetches == fetched + 1


def test_the_token_api_function_serves_every_route_with_the_authorizers_claims(local_stack) -> None:
    """On AWS the token API's $default route (behind the JWT authorizer) invokes TokenApiFunction with the
    claims rendered by API Gateway; here it is invoked with such an event directly."""
    from queryall_local.gateway import build_event
    from queryall_local.template import RouteSpec

    def invoke(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        event = build_event(route=RouteSpec("ANY", "$default", "TokenApiFunction"), path_parameters={},
                            method=method, raw_path=path, raw_query="",
                            header_items=[("content-type", "application/json")],
                            body=json.dumps(body).encode() if body else b"", source_ip="127.0.0.1")
        event["requestContext"]["authorizer"] = {"jwt": {"claims": {
            "sub": "carol", "iss": ISSUER, "queryall_buckets": "[acme globex]", "queryall_admin": "false"},
            "scopes": None}}
        result = local_stack.runtime.invoke("TokenApiFunction", event)
        return result["statusCode"], json.loads(result["body"])

    assert invoke("GET", "/query-all/jobs")[0] == 200
    status, body = invoke("POST", "/query-all", {"sql": "SELECT 1 AS one", "buckets": ["acme", "northwind"]})
    assert (status, body["error"]["message"]) == (403, "Access denied to bucket 'northwind'")
    assert invoke("POST", "/query-all", {"sql": "SELECT 1 AS one", "buckets": ["globex"]})[0] == 202
    assert invoke("GET", "/query-all/keys")[0] == 403
    assert invoke("GET", "/query-all/nope")[0] == 404
