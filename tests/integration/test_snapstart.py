"""SnapStart's restore hooks, run as the Lambda runtime runs them after a restore, against the local stack.

Every environment restored from one snapshot starts with what the snapshot holds: these tests put the
process in that state (caches filled, clients made, a known random state), run the registered hooks, and
check that what must not be shared was renewed.
"""

from __future__ import annotations

import random
import subprocess
import sys

import boto3
import pytest
from snapshot_restore_py import get_after_restore

from queryall.dal import aws
from queryall_local.template import load_template
from tests.conftest import API_KEY, OTHER_API_KEY, Api
from tests.template.sam_output import ROOT, TEMPLATE

pytestmark = pytest.mark.timeout(120)


def restore() -> None:
    """What the runtime does after restoring a snapshot: call each registered hook with its arguments."""
    import queryall.handlers.http_api  # noqa: F401  (every API function imports it: it registers the hooks)

    hooks = get_after_restore()
    assert hooks, "no restore hook registered"
    for func, args, kwargs in hooks:
        func(*args, **kwargs)


def test_every_snapstart_function_registers_the_hooks() -> None:
    # The functions the template gives SnapStart are the API functions, and each handler imports http_api.
    from samtranslator.yaml_helper import yaml_parse

    resources = yaml_parse(TEMPLATE.read_text())["Resources"]
    snapstart = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
                 and (r["Properties"].get("SnapStart") or {}).get("ApplyOn") == "PublishedVersions"}
    spec = load_template(TEMPLATE)
    # The token API's function is reached through a plain ApiGatewayV2 integration, on its alias.
    integrated = {r["Properties"]["IntegrationUri"]["Ref"].removesuffix(".Alias") for r in resources.values()
                  if r["Type"] == "AWS::ApiGatewayV2::Integration"}
    assert integrated == {"TokenApiFunction"}
    assert snapstart == {route.function for route in spec.routes} | integrated  # every HTTP function, nothing else
    check = ("import importlib, sys; from snapshot_restore_py import get_after_restore; "
             "importlib.import_module(sys.argv[1]); "
             "assert [f.__qualname__ for f, _, _ in get_after_restore()] == ['renew_after_restore']")
    for name in snapstart:
        assert resources[name]["Properties"]["AutoPublishAlias"] == "live"
        # Imported alone, as in its own environment, the handler module registers the hook once.
        result = subprocess.run([sys.executable, "-c", check, spec.functions[name].module],
                                capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, (name, result.stderr[-2000:])


def test_restore_renews_clients_and_their_session(local_stack) -> None:
    s3 = aws.client("s3")
    session = boto3.DEFAULT_SESSION
    assert session is not None and aws.client("s3") is s3  # what the snapshot holds: shared by every restore
    restore()
    renewed = aws.client("s3")
    assert renewed is not s3
    assert boto3.DEFAULT_SESSION is not None and boto3.DEFAULT_SESSION is not session
    renewed.list_buckets()  # the new client works (its credentials resolved anew)


def test_restore_forgets_cached_api_keys(local_stack, api: Api) -> None:
    ssm = local_stack.client("ssm")
    name = local_stack.spec.parameters["ApiKeysParameterName"]
    original = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    assert api.request("GET", "/query-all/jobs").status == 200  # the accepted keys are now cached
    rotated = "key-added-after-the-snapshot"
    ssm.put_parameter(Name=name, Value=f"{original},{rotated}", Type="SecureString", Overwrite=True)
    try:
        # Before the hooks: the cache (timestamped by the snapshot's clock) does not know the new key yet.
        assert api.request("GET", "/query-all/jobs", api_key=rotated).status == 401
        restore()
        assert api.request("GET", "/query-all/jobs", api_key=rotated).status == 200
        assert api.request("GET", "/query-all/jobs", api_key=OTHER_API_KEY).status == 200
    finally:
        ssm.put_parameter(Name=name, Value=original, Type="SecureString", Overwrite=True)
        restore()
    assert api.request("GET", "/query-all/jobs", api_key=rotated).status == 401
    assert api.request("GET", "/query-all/jobs", api_key=API_KEY).status == 200


def test_restore_forgets_looked_up_managed_keys() -> None:
    from queryall.dal import managed_keys

    managed_keys._cache["a-key-hash-seen-before-the-snapshot"] = (0.0, None)  # "unknown", as of the snapshot
    restore()
    assert managed_keys._cache == {}


def test_restore_reseeds_random() -> None:
    draws = []
    for _ in range(2):  # two environments restored from one snapshot: the same random state at first
        random.seed(1234)
        restore()
        draws.append([random.random() for _ in range(4)])
    assert draws[0] != draws[1]
