"""`queryall local serve --jwt-issuer ISS --jwt-audience AUD --jwks-url URL`: all three or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from queryall_local.cli import build_parser, main


def test_the_three_options_are_named_exactly_so(tmp_path: Path) -> None:
    args = build_parser().parse_args(["local", "serve", "--tenants-dir", str(tmp_path), "--jwt-issuer", "https://i/",
                                      "--jwt-audience", "api", "--jwks-url", "http://127.0.0.1:1/jwks.json"])
    assert (args.jwt_issuer, args.jwt_audience, args.jwks_url) == ("https://i/", "api", "http://127.0.0.1:1/jwks.json")


@pytest.mark.parametrize("given", [["--jwt-issuer", "https://i/"], ["--jwks-url", "http://127.0.0.1:1/j"],
                                   ["--jwt-issuer", "https://i/", "--jwt-audience", "api"]])
def test_some_but_not_all_is_a_usage_error(tmp_path: Path, given: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "serve", "--tenants-dir", str(tmp_path), *given]) == 2
    assert "--jwt-issuer, --jwt-audience and --jwks-url" in capsys.readouterr().err
