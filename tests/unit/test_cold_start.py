"""What an API function loads at cold start: never duckdb or pyarrow, never the X-Ray SDK, and no
pydantic model it does not use.

Each handler module is imported in a fresh interpreter with the function's environment from the
template, as Lambda would import it (tracing on). duckdb/pyarrow cost ~270 ms of import and belong to
the workflow functions; the X-Ray SDK (~90 ms with its patchers) is left to the workflow functions too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from queryall_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_template(ROOT / "template.yaml")
API_FUNCTIONS = sorted({route.function for route in SPEC.routes})
NEVER = ("duckdb", "pyarrow", "aws_xray_sdk")


def _after_import(module: str, environment: dict[str, str], expression: str) -> object:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(environment)
    env.update(PYTHONPATH=str(ROOT / "functions"), AWS_DEFAULT_REGION="us-east-1",
               LAMBDA_TASK_ROOT=str(ROOT / "functions"), AWS_LAMBDA_FUNCTION_NAME="cold-start-test")
    code = f"import gc, json, sys\nimport {module}\nprint(json.dumps({expression}))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded_after_import(module: str, environment: dict[str, str]) -> set[str]:
    return set(_after_import(module, environment, "sorted(sys.modules)"))


def test_the_template_routes_submit_poll_and_wait() -> None:
    assert {"SubmitFunction", "PollFunction", "WaitFunction"} <= set(API_FUNCTIONS)


@pytest.mark.parametrize("function", API_FUNCTIONS)
def test_api_function_cold_start_loads_no_duckdb_pyarrow_or_xray(function: str) -> None:
    spec = SPEC.functions[function]
    loaded = _loaded_after_import(spec.module, spec.environment)
    assert spec.module in loaded
    assert sorted(name for name in NEVER if name in loaded) == []


# Models only the OpenAPI document shows (or only other functions use): submit, poll and wait must not
# build them at import (each pydantic model builds its schema then), nor the catalog backends.
NOT_ON_THE_REQUEST_PATH = ("queryall.models.results", "queryall.models.job_views", "queryall.models.workflow",
                           "queryall.models.catalog", "queryall.dal.tenant_databases")


@pytest.mark.parametrize("function", ["SubmitFunction", "PollFunction", "WaitFunction"])
def test_submit_poll_and_wait_load_only_the_models_they_use(function: str) -> None:
    spec = SPEC.functions[function]
    loaded = _loaded_after_import(spec.module, spec.environment)
    assert sorted(name for name in NOT_ON_THE_REQUEST_PATH if name in loaded) == []


@pytest.mark.parametrize("function", sorted(SPEC.functions))
def test_every_function_resumes_the_collector_after_its_import(function: str) -> None:
    """In Lambda the collector pauses while a handler module loads (queryall.handlers): each module
    must end with init_done(), or its function would run without a cyclic garbage collector."""
    spec = SPEC.functions[function]
    enabled, frozen = _after_import(spec.module, spec.environment, "[gc.isenabled(), gc.get_freeze_count()]")
    assert enabled and frozen > 0


def test_a_workflow_function_does_load_them() -> None:
    """The check above can fail: the query step's module brings duckdb, pyarrow and the X-Ray SDK."""
    spec = SPEC.functions["QueryBatchFunction"]
    loaded = _loaded_after_import(spec.module, spec.environment)
    assert all(name in loaded for name in NEVER)


_RESOURCES = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
WITHOUT_LAYER = sorted(name for name in SPEC.functions if not _RESOURCES[name]["Properties"].get("Layers"))


@pytest.mark.parametrize("function", WITHOUT_LAYER)
def test_functions_without_the_duckdb_layer_can_import(function: str) -> None:
    """A function deployed without the DuckDb layer has neither package: importing one would fail."""
    spec = SPEC.functions[function]
    loaded = _loaded_after_import(spec.module, spec.environment)
    assert sorted(name for name in ("duckdb", "pyarrow") if name in loaded) == []
