"""Question mode in the template: its parameters reach both functions, and Bedrock may be invoked on the
configured model only."""

from __future__ import annotations

import json
from pathlib import Path

from samtranslator.yaml_helper import yaml_parse

from queryall_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
# TokenApiFunction serves POST /query-all/sql for Bearer tokens (the token API), so it generates SQL too.
QUESTION_FUNCTIONS = ("GenerateSqlFunction", "SqlPreviewFunction", "TokenApiFunction")


def _statements(function: str) -> list[dict]:
    return TEMPLATE["Resources"][function]["Properties"]["Policies"][0]["Statement"]


def test_bedrock_invoke_is_granted_on_the_configured_model_only() -> None:
    for function in QUESTION_FUNCTIONS:
        grants = [s["Fn::If"] for s in _statements(function) if "Fn::If" in s
                  and "bedrock:InvokeModel" in json.dumps(s)]
        assert len(grants) == 1
        condition, statement, otherwise = grants[0]
        assert condition == "SqlGeneratorIsBedrock" and otherwise == {"Ref": "AWS::NoValue"}
        assert statement["Action"] == "bedrock:InvokeModel"
        assert statement["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/${SqlGeneratorModel}"}
    assert TEMPLATE["Conditions"]["SqlGeneratorIsBedrock"] == {"Fn::Equals": [{"Ref": "SqlGenerator"}, "bedrock"]}
    others = [name for name, r in TEMPLATE["Resources"].items()
              if name not in QUESTION_FUNCTIONS and "bedrock" in json.dumps(r.get("Properties", {}))]
    assert others == []


def test_generator_parameters_reach_both_functions() -> None:
    assert TEMPLATE["Parameters"]["SqlGenerator"]["AllowedValues"] == ["none", "bedrock", "openai", "motherduck"]
    assert TEMPLATE["Parameters"]["SqlGenerator"]["Default"] == "none"
    spec = load_template(ROOT / "template.yaml", {"SqlGenerator": "openai", "SqlGeneratorModel": "qwen2.5-coder:7b",
                                                  "SqlGeneratorUrl": "http://127.0.0.1:11434/v1"})
    for function in QUESTION_FUNCTIONS:
        environment = spec.functions[function].environment
        assert environment["SQL_GENERATOR"] == "openai"
        assert environment["SQL_GENERATOR_MODEL"] == "qwen2.5-coder:7b"
        assert environment["SQL_GENERATOR_URL"] == "http://127.0.0.1:11434/v1"
        assert environment["SQL_GENERATOR_TIMEOUT_SECONDS"] == "20"
        assert environment["SCHEMA_CONTEXT_MAX_CHARS"] == "24000"
    assert [r.path for r in spec.routes if r.function == "SqlPreviewFunction"] == ["/query-all/sql"]
