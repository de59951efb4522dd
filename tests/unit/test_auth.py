import pytest

from queryall.errors import Unauthorized
from queryall.logic.auth import caller_for_api_key


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
