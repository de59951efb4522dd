import pytest

from queryall.errors import Forbidden, Unauthorized
from queryall.logic.auth import caller_for_api_key, require_admin


def test_valid_key_gives_a_stable_caller_id_that_does_not_reveal_the_key() -> None:
    caller = caller_for_api_key("secret-one", ["other", "secret-one"])
    assert caller == caller_for_api_key("secret-one", ["secret-one"])
    assert caller.startswith("key:") and "secret" not in caller
    assert caller != caller_for_api_key("other", ["other"])


@pytest.mark.parametrize("presented", [None, "", "secret", "secret-one ", "SECRET-ONE"])
def test_missing_or_wrong_key_is_unauthorized(presented: str | None) -> None:
    with pytest.raises(Unauthorized) as raised:
        caller_for_api_key(presented, ["secret-one"])
    assert raised.value.message == "Authentication required"


def test_no_configured_keys_accepts_nothing() -> None:
    with pytest.raises(Unauthorized):
        caller_for_api_key("anything", [])


def test_admin_key_passes_and_any_other_key_is_forbidden() -> None:
    require_admin("admin-one", ["other-admin", "admin-one"])  # no exception
    for presented in (None, "", "user-key", "admin-one ", "ADMIN-ONE"):
        with pytest.raises(Forbidden) as raised:
            require_admin(presented, ["admin-one"])
        assert raised.value.message == "This route needs an admin API key"
    with pytest.raises(Forbidden):
        require_admin("anything", [])


# --- managed keys and token claims --------------------------------------------------------------

from queryall.logic.auth import (  # noqa: E402
    hash_secret,
    is_managed_secret,
    new_secret,
    parse_admin_claim,
    parse_buckets_claim,
    principal_for_claims,
)


def test_a_new_secret_has_256_random_bits_and_only_its_sha256_is_kept() -> None:
    secrets = {new_secret() for _ in range(200)}
    assert len(secrets) == 200 and all(is_managed_secret(s) for s in secrets)
    secret = secrets.pop()
    assert hash_secret(secret) == __import__("hashlib").sha256(secret.encode()).hexdigest()
    assert secret not in hash_secret(secret)
    assert not is_managed_secret("qak_short") and not is_managed_secret("local-dev-key")


@pytest.mark.parametrize(("claim", "expected"), [
    (["acme", "globex"], {"acme", "globex"}),
    ("acme globex", {"acme", "globex"}),
    ('["acme","globex"]', {"acme", "globex"}),  # how the HTTP API authorizer passes a list claim
    ("[acme globex]", {"acme", "globex"}),
    ("*", None), (["*"], None), ("acme *", None),
    (None, set()), ("", set()), (42, set()), ({"acme": 1}, set()),
    (["acme", "../etc", "x y", 7], {"acme"}),
])
def test_buckets_claim(claim: object, expected: set | None) -> None:
    parsed = parse_buckets_claim(claim)
    assert parsed == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize(("claim", "expected"), [
    (True, True), ("true", True), ("TRUE", True), (False, False), ("false", False), (None, False),
    (1, False), ("yes", False),
])
def test_admin_claim_only_an_explicit_true(claim: object, expected: bool) -> None:
    assert parse_admin_claim(claim) is expected


def test_a_token_owner_can_never_be_a_key_id_or_bootstrap_fingerprint() -> None:
    principal = principal_for_claims({"sub": "key-0123456789abcdef0123", "queryall_buckets": "acme"})
    assert principal.owner == "token:key-0123456789abcdef0123" and principal.buckets == {"acme"}
    assert not principal.admin and not principal.may_manage_keys
    with pytest.raises(Unauthorized):
        principal_for_claims({"queryall_buckets": "*"})
