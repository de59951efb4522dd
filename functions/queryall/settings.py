"""Runtime configuration, read once per cold start from the function's environment.

Every function gets the variables the template gives it; a setting a function does not
need stays unset there and `require()` names it if code reaches for it anyway.
"""

from __future__ import annotations

import functools
import os

from pydantic import BaseModel, ConfigDict, Field


class ConfigurationError(RuntimeError):
    """A setting the running code needs is missing from the function's environment."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    jobs_table: str | None = None
    results_bucket: str | None = None
    state_machine_arn: str | None = None
    sql_guard_function: str | None = None
    api_keys_parameter: str | None = None
    tenant_databases: str | None = None
    query_batch_size: int = Field(25, ge=1, le=500)
    map_max_concurrency: int = Field(40, ge=1, le=40)
    query_timeout_seconds: float = Field(30.0, gt=0, le=900)
    job_ttl_seconds: int = Field(3600, ge=60)
    # How long a fetched API key list is trusted before SSM is read again.
    api_keys_cache_seconds: int = Field(300, ge=0)

    def require(self, name: str) -> str:
        value = getattr(self, name)
        if not value:
            raise ConfigurationError(f"setting {name.upper()} is not configured for this function")
        return value


@functools.cache
def get_settings() -> Settings:
    fields = Settings.model_fields
    values = {name: os.environ[name.upper()] for name in fields if os.environ.get(name.upper())}
    return Settings.model_validate(values)


def reset_caches() -> None:
    """Forget settings and AWS clients, as a new cold start would (the local stack and tests use it)."""
    from aws_lambda_powertools.utilities.parameters import base

    from queryall.dal import aws

    get_settings.cache_clear()
    aws.reset_clients()
    base.clear_caches()
