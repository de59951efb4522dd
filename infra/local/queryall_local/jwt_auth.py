"""Bearer tokens in the local stack: what the HTTP API's JWT authorizer does on AWS, done in the gateway.

A request carrying `Authorization: Bearer <jwt>` is checked before any function runs: the token must be
a well-formed JWT signed by a key of the configured JWKS (fetched by `kid`; an unknown `kid` fetches the
set again, so a rotated key works at once), with the configured issuer, the audience among its `aud`,
and within `exp`/`nbf`. `alg: none`, HMAC (a public key must never become a shared secret) and anything
malformed are refused. A refused token is a 401 and the function never sees the request; an accepted one
puts its claims where API Gateway puts them, `requestContext.authorizer.jwt.claims`, with values
rendered as API Gateway renders them (strings; a list as `[a b]`).

Differences from AWS, on purpose: API Gateway's JWT authorizer accepts RSA keys only, this also accepts
EC (ES256/384/512); its 401 body is `{"message": "Unauthorized"}`, this answers in the API's own error
envelope, naming the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWKClient

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
JWKS_CACHE_SECONDS = 300
# An unknown `kid` fetches the JWKS again at most this often: a rotated key works within seconds, and a
# flood of made-up kids cannot turn every request into a fetch from the issuer.
REFETCH_COOLDOWN_SECONDS = 5.0


@dataclass(frozen=True)
class Rejection:
    status: int
    body: dict[str, Any]


def _rendered(value: Any) -> str:
    """A claim as API Gateway hands it to the function."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_rendered(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class BearerTokens:
    """Validates Bearer tokens against one issuer, audience and JWKS URL."""

    def __init__(self, issuer: str, audience: str, jwks_url: str, *,
                 refetch_cooldown_seconds: float = REFETCH_COOLDOWN_SECONDS) -> None:
        self.issuer = issuer
        self.audience = audience
        self._jwks = PyJWKClient(jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=5,
                                 cooldown_duration=refetch_cooldown_seconds)

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims; raises jwt.PyJWTError (or ValueError) for any token that is not accepted."""
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"algorithm {header.get('alg')!r} is not accepted")
        key = self._jwks.get_signing_key_from_jwt(token)
        return jwt.decode(token, key.key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                          options={"require": ["exp", "iss", "aud", "sub"]}, leeway=0)

    def authorize(self, event: dict[str, Any]) -> Rejection | None:
        """Check the event's Bearer token (if any) and put its claims in the request context; a Rejection
        (401) when the token is not accepted. Without a Bearer token the request goes on unchanged."""
        header = (event.get("headers") or {}).get("authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            claims = self.claims(token.strip())
        except (jwt.PyJWTError, ValueError) as error:
            return Rejection(401, {"error": {"code": "unauthorized", "message": f"Invalid bearer token: {error}"}})
        event["requestContext"]["authorizer"] = {"jwt": {
            "claims": {name: _rendered(value) for name, value in claims.items()},
            "scopes": None,
        }}
        return None
