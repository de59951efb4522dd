"""The MotherDuck token comes from SSM or Secrets Manager (moto's, through Powertools Parameters).

No MotherDuck service is reachable here: what the backend does with the token is covered by
tests/unit/test_tenant_databases.py through its connection seam."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

from queryall.dal.tenant_databases import MotherDuckTenantDatabases


def test_token_from_ssm_and_from_secrets_manager(local_stack) -> None:
    local_stack.client("ssm").put_parameter(Name="/queryall/test/md-token", Value="token-in-ssm",
                                            Type="SecureString", Overwrite=True)
    local_stack.client("secretsmanager").create_secret(Name="queryall/test/motherduck", SecretString="token-in-sm")
    parameters.clear_caches()
    ssm = MotherDuckTenantDatabases("md:warehouse_{bucket}?token_ssm=/queryall/test/md-token")
    secret = MotherDuckTenantDatabases("md:warehouse_{bucket}?token_secret=queryall/test/motherduck")
    assert ssm.token() == "token-in-ssm"
    assert secret.token() == "token-in-sm"
    assert "SET motherduck_token = 'token-in-ssm'" in ssm.session_setup()
