"""Runtime configuration, read once per cold start from the function's environment.

Every function gets the variables the template gives it and declares the ones it needs (`require`, when
its handler is built, at import): in Lambda a missing or malformed one fails the cold start with a
message naming it, not the first request that reaches for it. A setting a function does not need stays
unset there, and `Settings.require()` names it if code reaches for it anyway.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


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
    catalog_table: str | None = None
    admin_api_keys_parameter: str | None = None
    # Managed API keys (queryall.dal.managed_keys); how long a looked-up key is trusted: a revocation
    # takes effect within this long, so never more than a minute.
    api_keys_table: str | None = None
    idempotency_table: str | None = None
    # Quotas (queryall.logic.quotas): the defaults; a managed key may set its own.
    quotas_table: str | None = None
    max_running_jobs: int = Field(5, ge=1)
    submits_per_minute: int = Field(60, ge=1)
    managed_key_cache_seconds: int = Field(60, ge=0, le=60)
    refresh_catalog_function: str | None = None
    # Where the job state-change events go (name or ARN; "default" is the account's default bus).
    event_bus_name: str | None = None
    # Event submits (handlers.event_submit): the owner of their jobs, and where refused input is kept.
    event_submit_owner: str | None = None
    submit_dead_letter_queue: str | None = None
    query_batch_size: int = Field(100, ge=1, le=500)
    map_max_concurrency: int = Field(40, ge=1, le=40)
    # Above this many target databases the workflow uses a distributed Map (items in S3, ItemBatcher).
    distributed_map_threshold: int = Field(1000, ge=1)
    distributed_map_max_concurrency: int = Field(100, ge=1, le=10_000)  # template.yaml says why
    query_timeout_seconds: float = Field(30.0, gt=0, le=900)
    # DuckDB's limits for one tenant query: memory (never spilled to disk) and worker threads.
    query_memory_limit_mb: int = Field(1024, ge=64)
    # One thread: a tenant query is milliseconds of work, and a second DuckDB thread per query cost 40%
    # more CPU per job at 1,000 tenants (bench/fanout.py), with batches already running side by side.
    query_threads: int = Field(1, ge=1, le=16)
    # Tenants a batch queries at once (S3, MotherDuck: opening one is network round trips), each in its
    # own worker with the limits above: K x QUERY_MEMORY_LIMIT_MB must fit the function's memory.
    query_concurrency: int = Field(8, ge=1, le=64)
    # S3 tenants up to this size are downloaded (one GET) into the worker's /tmp and attached from there;
    # larger ones are attached over S3. QueryConcurrency x this must fit the function's /tmp.
    tenant_download_max_mb: int = Field(64, ge=0, le=10_240)
    job_ttl_seconds: int = Field(3600, ge=60)
    # Lifetime of a presigned result URL (never past the job's expiry); SigV4 allows at most 7 days.
    result_url_expiry_seconds: int = Field(900, ge=1, le=604_800)
    # How long a fetched API key list is trusted before SSM is read again.
    api_keys_cache_seconds: int = Field(300, ge=0)
    # A job's deadline (`timeout_seconds` of the request): when none is asked for, and the most allowed.
    job_timeout_default_seconds: int = Field(300, ge=1, le=900)
    job_timeout_max_seconds: int = Field(900, ge=1, le=900)
    # The state machine's TimeoutSeconds: a job still processing this long after its submit is dead (its
    # execution timed out or ended unseen) and reads as failed execution_timed_out (`logic.job_watchdog`).
    max_job_seconds: int = Field(3600, ge=60)

    # Question mode (queryall.logic.sql_generation): which generator turns a question into SQL, and how.
    sql_generator: Literal["none", "bedrock", "openai", "motherduck"] = "none"
    sql_generator_model: str | None = None
    sql_generator_url: str | None = None
    # Where the OpenAI-compatible endpoint's API key is kept: an SSM parameter or a Secrets Manager secret.
    sql_generator_api_key_parameter: str | None = None
    sql_generator_api_key_secret: str | None = None
    # The whole generation, its one retry included, must end within this (the preview route answers
    # inside API Gateway's 30 s).
    sql_generator_timeout_seconds: float = Field(20.0, gt=0, le=120)
    schema_context_max_chars: int = Field(24_000, ge=1_000, le=500_000)

    def require(self, name: str) -> str:
        value = getattr(self, name)
        if not value:
            raise ConfigurationError(f"setting {name.upper()} is not configured for this function")
        return value


@functools.cache
def get_settings() -> Settings:
    fields = Settings.model_fields
    values = {name: os.environ[name.upper()] for name in fields if os.environ.get(name.upper())}
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        problems = [f"{str(detail['loc'][0]).upper()}={detail['input']!r}: {detail['msg']}"
                    for detail in error.errors()]
        raise ConfigurationError(f"setting {'; '.join(problems)}") from None


# Off while the OpenAPI document imports route modules only to read their routes: the docs function
# does not run those routes and is not given their settings.
_CHECKING = contextvars.ContextVar("settings_checked_at_start", default=True)


def require(*names: str) -> None:
    """A function's declaration of the settings it needs, checked at once in Lambda (its cold start).

    Outside Lambda (tests, the local stack, the OpenAPI build) a module is imported without its
    function's environment, so only the names are checked, and each setting when it is read."""
    unknown = [name for name in names if name not in Settings.model_fields]
    if unknown:
        raise ValueError(f"no such setting: {', '.join(unknown)}")
    if "AWS_LAMBDA_FUNCTION_NAME" not in os.environ or not _CHECKING.get():
        return
    settings = get_settings()  # every setting given is well-formed (or ConfigurationError names it)
    for name in names:
        settings.require(name)


@contextlib.contextmanager
def unchecked() -> Iterator[None]:
    """Import modules for their declarations only (the OpenAPI build): their `require` checks nothing."""
    token = _CHECKING.set(False)
    try:
        yield
    finally:
        _CHECKING.reset(token)


def reset_caches() -> None:
    """Forget settings and AWS clients, as a new cold start would (the local stack and tests use it)."""
    from aws_lambda_powertools.utilities.parameters import base

    from queryall.dal import api_keys, aws, managed_keys

    get_settings.cache_clear()
    aws.reset_clients()
    api_keys.clear_cache()
    managed_keys.clear_cache()
    base.clear_caches()
