"""What the SAM translator makes of template.yaml, offline (no AWS account, no IAM calls)."""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class OfflinePolicyLoader:
    """SAM resolves managed policy names through IAM; answer offline with the ones the template uses."""

    def load(self) -> dict[str, str]:
        names = ["AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSXRayDaemonWriteAccess"]
        return {name: f"arn:aws:iam::aws:policy/{name}" for name in names}


def packaged(template: dict) -> dict:
    """What `sam package` does to local paths: they become S3 locations."""
    result = copy.deepcopy(template)
    for resource in result["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if key in props:
                props[key] = f"s3://artifacts/{key.lower()}"
    result["Globals"]["Function"]["CodeUri"] = "s3://artifacts/code"
    return result


@cache
def _translated() -> dict[str, Any]:
    # The translator reads the region from the environment (for ARNs and partition checks).
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        return transform(packaged(yaml_parse(TEMPLATE.read_text())), {}, OfflinePolicyLoader())


def translated() -> dict[str, Any]:
    """The CloudFormation template SAM makes of template.yaml (a fresh copy; callers may change it)."""
    return copy.deepcopy(_translated())
