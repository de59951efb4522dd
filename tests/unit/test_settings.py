"""Settings checked when a function starts: a missing or malformed one is a ConfigurationError naming it."""

from __future__ import annotations

import pytest

from queryall import settings
from queryall.settings import ConfigurationError, get_settings, require


@pytest.fixture
def in_lambda(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "settings-test")
    for name in settings.Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_a_missing_setting_fails_require_naming_it(in_lambda: pytest.MonkeyPatch) -> None:
    in_lambda.setenv("JOBS_TABLE", "jobs")
    with pytest.raises(ConfigurationError, match="RESULTS_BUCKET"):
        require("jobs_table", "results_bucket")


def test_a_malformed_setting_fails_require_naming_it_even_when_not_required(in_lambda: pytest.MonkeyPatch) -> None:
    in_lambda.setenv("JOBS_TABLE", "jobs")
    in_lambda.setenv("QUERY_BATCH_SIZE", "lots")
    with pytest.raises(ConfigurationError, match="QUERY_BATCH_SIZE='lots'"):
        require("jobs_table")
    in_lambda.setenv("QUERY_BATCH_SIZE", "100000")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="QUERY_BATCH_SIZE"):
        require()


def test_present_and_well_formed_settings_pass(in_lambda: pytest.MonkeyPatch) -> None:
    in_lambda.setenv("JOBS_TABLE", "jobs")
    in_lambda.setenv("QUERY_BATCH_SIZE", "50")
    require("jobs_table")
    assert get_settings().query_batch_size == 50


def test_an_unknown_name_is_a_mistake_in_the_code(in_lambda: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="jobs_tabel"):
        require("jobs_tabel")


def test_outside_lambda_and_while_unchecked_only_names_are_checked(in_lambda: pytest.MonkeyPatch) -> None:
    with settings.unchecked():
        require("jobs_table")
        with pytest.raises(ValueError):
            require("no_such_setting")
    in_lambda.delenv("AWS_LAMBDA_FUNCTION_NAME")
    require("jobs_table")
