"""Each function's handler module, imported as Lambda imports it (a fresh interpreter with the function's
environment from template.yaml): a setting it needs that is missing or malformed fails the cold start, with
a ConfigurationError naming the setting, instead of the first request that reads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from queryall.settings import Settings
from queryall_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_template(ROOT / "template.yaml")
# The local stack (when a test before this one started it) puts every function's settings in os.environ.
SETTINGS = {name.upper() for name in Settings.model_fields}


def _import(module: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "POWERTOOLS_")) and key not in SETTINGS}
    env.update(environment)
    env.update(PYTHONPATH=str(ROOT / "functions"), AWS_DEFAULT_REGION="us-east-1",
               LAMBDA_TASK_ROOT=str(ROOT / "functions"), AWS_LAMBDA_FUNCTION_NAME="settings-test")
    return subprocess.run([sys.executable, "-c", f"import {module}"], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("function", "missing"), [
    ("PollFunction", "RESULTS_BUCKET"),
    ("SubmitFunction", "STATE_MACHINE_ARN"),
    ("SubmitFunction", "API_KEYS_PARAMETER"),
    ("CatalogApiFunction", "REFRESH_CATALOG_FUNCTION"),
    ("QueryBatchFunction", "TENANT_DATABASES"),
    ("AggregateFunction", "JOBS_TABLE"),
])
def test_a_missing_setting_fails_the_cold_start_naming_it(function: str, missing: str) -> None:
    spec = SPEC.functions[function]
    environment = {key: value for key, value in spec.environment.items() if key != missing}
    done = _import(spec.module, environment)
    assert done.returncode != 0
    assert "ConfigurationError" in done.stderr and missing in done.stderr, done.stderr


@pytest.mark.parametrize(("function", "setting", "value"), [
    ("PollFunction", "RESULT_URL_EXPIRY_SECONDS", "soon"),
    ("PlanTargetsFunction", "QUERY_BATCH_SIZE", "0"),
    ("QueryBatchFunction", "QUERY_TIMEOUT_SECONDS", "-1"),
])
def test_a_malformed_setting_fails_the_cold_start_naming_it(function: str, setting: str, value: str) -> None:
    spec = SPEC.functions[function]
    done = _import(spec.module, {**spec.environment, setting: value})
    assert done.returncode != 0
    assert "ConfigurationError" in done.stderr and setting in done.stderr, done.stderr


@pytest.mark.parametrize("function", sorted(SPEC.functions))
def test_every_function_starts_with_what_the_template_gives_it(function: str) -> None:
    spec = SPEC.functions[function]
    done = _import(spec.module, spec.environment)
    assert done.returncode == 0, done.stderr
