"""Where tenant databases live in a deploy: with the defaults, s3:// on a bucket the stack creates and the
tenant readers may read; with an EFS access point, a read-only mount at /mnt/tenants in the given VPC.

Each variant is checked the way AWS checks it: cfn-lint on the template with that variant's parameters as
its defaults, and the SAM translator with those parameter values; then the translated functions are
resolved with the variant's parameters (conditions evaluated, AWS::NoValue dropped) and inspected.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from samtranslator.translator.transform import transform

from queryall_local.stack import LocalStack
from queryall_local.template import load_template, read_template, resolve_locally, resource_exists
from tests.template.sam_output import ROOT, TEMPLATE, OfflinePolicyLoader, packaged

BIN = Path(sys.executable).parent
TENANT_READERS = ("PlanTargetsFunction", "QueryBatchFunction", "RefreshCatalogFunction")
ACCESS_POINT = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0"
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0fedcba9876543210")
SECURITY_GROUP = "sg-0a1b2c3d4e5f60718"
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "named-bucket": {"TenantDatabasesBucket": "acme-tenants"},
    "efs": {"TenantsEfsAccessPointArn": ACCESS_POINT, "TenantsEfsSubnetIds": f"{SUBNETS[0]},{SUBNETS[1]}",
            "TenantsEfsSecurityGroupIds": SECURITY_GROUP},
}


def _translate(parameters: dict[str, str]) -> dict[str, Any]:
    template = read_template(TEMPLATE)
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        return transform(packaged(template), dict(parameters), OfflinePolicyLoader())


def _resolved_resources(parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The translated resources CloudFormation would create with ``parameters``: the functions' tenant
    settings (environment, mount, VPC) and the roles' policies resolved, other properties as SAM left them."""
    output = _translate(parameters)
    template = read_template(TEMPLATE)
    values = {name: str(decl.get("Default", "")) for name, decl in template["Parameters"].items()} | parameters
    resources: dict[str, dict[str, Any]] = {}
    for name, resource in output["Resources"].items():
        if not resource_exists(name, output, values):
            continue
        props = resource.get("Properties", {})
        keep = {"Function": ("Environment", "FileSystemConfigs", "VpcConfig"), "Role": ("Policies",)}
        keys = keep.get(resource["Type"].rsplit("::", 1)[1], ())
        # Resolved against the source template: its resource types are the ones the local reader knows.
        resolved = resolve_locally({k: v for k, v in props.items() if k in keys}, template, values)
        resources[name] = {**resource, "Properties": {**props, **resolved}}
        for key in keys:
            if key not in resolved:
                resources[name]["Properties"].pop(key, None)
    return resources


def _statements(resources: dict[str, dict[str, Any]], function: str) -> list[dict[str, Any]]:
    role = resources[f"{function}Role"]["Properties"]
    return [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cfn_lint_passes_for_each_variant(variant: str) -> None:
    # The variant's values become the parameters' defaults, so cfn-lint checks what would be deployed.
    text = TEMPLATE.read_text()
    for name, value in VARIANTS[variant].items():
        start = text.index(f"\n  {name}:\n")
        default = text.index("    Default:", start)
        end = text.index("\n", default)
        text = text[:default] + f'    Default: "{value}"' + text[end:]
    target = ROOT / f".template-{variant}.yaml"  # beside template.yaml: CodeUri and DefinitionUri are relative
    target.write_text(text)
    try:
        result = subprocess.run([str(BIN / "cfn-lint"), str(target)], capture_output=True, text=True)
    finally:
        target.unlink()
    assert result.returncode == 0, result.stdout + result.stderr


def test_defaults_put_tenants_on_a_bucket_the_stack_creates() -> None:
    resources = _resolved_resources(VARIANTS["defaults"])
    bucket = resources["TenantsBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket" and bucket["DeletionPolicy"] == "Retain"
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    name = resolve_locally({"Ref": "TenantsBucket"}, read_template(TEMPLATE), {})
    for function in TENANT_READERS:
        props = resources[function]["Properties"]
        assert props["Environment"]["Variables"]["TENANT_DATABASES"] == f"s3://{name}/warehouse_{{bucket}}.duckdb"
        assert "VpcConfig" not in props and "FileSystemConfigs" not in props
        grants = [s for s in _statements(resources, function) if "s3:ListBucket" in s["Action"]]
        assert grants == [{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"],
                           "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]}]
        assert not [s for s in _statements(resources, function) if "elasticfilesystem" in str(s["Action"])]


def test_a_named_bucket_is_read_and_none_is_created() -> None:
    resources = _resolved_resources(VARIANTS["named-bucket"])
    assert "TenantsBucket" not in resources and "TenantsBucketPolicy" not in resources
    for function in TENANT_READERS:
        props = resources[function]["Properties"]
        assert props["Environment"]["Variables"]["TENANT_DATABASES"] == "s3://acme-tenants/warehouse_{bucket}.duckdb"
        grants = [s for s in _statements(resources, function) if "s3:ListBucket" in s["Action"]]
        assert grants[0]["Resource"] == ["arn:aws:s3:::acme-tenants", "arn:aws:s3:::acme-tenants/*"]


def test_an_efs_access_point_mounts_read_only_in_the_tenant_readers_only() -> None:
    resources = _resolved_resources(VARIANTS["efs"])
    assert "TenantsBucket" not in resources
    for function in TENANT_READERS:
        props = resources[function]["Properties"]
        assert props["Environment"]["Variables"]["TENANT_DATABASES"] == "/mnt/tenants/warehouse_{bucket}.duckdb"
        assert props["FileSystemConfigs"] == [{"Arn": ACCESS_POINT, "LocalMountPath": "/mnt/tenants"}]
        assert props["VpcConfig"] == {"SubnetIds": list(SUBNETS), "SecurityGroupIds": [SECURITY_GROUP]}
        statements = _statements(resources, function)
        assert not [s for s in statements if "s3:ListBucket" in s["Action"]]
        mounts = [s for s in statements if "elasticfilesystem" in str(s["Action"])]
        assert mounts == [{"Effect": "Allow", "Action": "elasticfilesystem:ClientMount", "Resource": "*",
                           "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": ACCESS_POINT}}}]
    others = [name for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"
              and name not in TENANT_READERS and {"VpcConfig", "FileSystemConfigs"} & set(r["Properties"])]
    assert others == []  # SnapStart functions cannot mount EFS; the API never reads tenants


def test_an_explicit_tenant_databases_wins() -> None:
    resources = _resolved_resources({"TenantDatabases": "md:warehouse_{bucket}?token_ssm=/md/token"})
    assert "TenantsBucket" not in resources
    for function in (*TENANT_READERS, "GenerateSqlFunction", "SqlPreviewFunction"):
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert variables["TENANT_DATABASES"] == "md:warehouse_{bucket}?token_ssm=/md/token"


def test_the_local_stack_keeps_its_folder_of_tenants(tmp_path: Path) -> None:
    stack = LocalStack(tenants_dir=tmp_path, with_gateway=False)
    spec = load_template(stack.template_path, stack._overrides())
    for function in TENANT_READERS:
        assert spec.functions[function].environment["TENANT_DATABASES"] == str(tmp_path / "warehouse_{bucket}.duckdb")
    assert "TenantsBucket" not in spec.buckets  # CloudFormation would not create it either
