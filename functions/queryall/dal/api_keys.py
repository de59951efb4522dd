"""Accepted API keys, kept in SSM Parameter Store (comma-separated) and cached by Powertools."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters


def accepted_api_keys(parameter_name: str, max_age: int) -> list[str]:
    value = parameters.get_parameter(parameter_name, decrypt=True, max_age=max_age)
    return [key.strip() for key in str(value).split(",") if key.strip()]


def clear_cache() -> None:
    parameters.clear_caches()
