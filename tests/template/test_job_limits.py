"""The limits that make every job end agree across the template, the state machine and the settings."""

from __future__ import annotations

import json

from samtranslator.yaml_helper import yaml_parse

from queryall.settings import Settings
from tests.template.sam_output import ROOT, TEMPLATE

DEFINITION = ROOT / "infra" / "statemachine" / "query_all.asl.json"


def test_the_state_machine_times_out_at_the_maximum_job_time() -> None:
    # The definition must stay plain JSON, so its TimeoutSeconds is a literal: it is the setting.
    assert json.loads(DEFINITION.read_text())["TimeoutSeconds"] == Settings().max_job_seconds


def test_the_job_deadline_parameters_are_the_settings_defaults_and_fit_the_maximum_job_time() -> None:
    parameters = yaml_parse(TEMPLATE.read_text())["Parameters"]
    settings = Settings()
    assert parameters["JobTimeoutDefaultSeconds"]["Default"] == settings.job_timeout_default_seconds
    assert parameters["JobTimeoutMaxSeconds"]["Default"] == settings.job_timeout_max_seconds
    # A job at its longest deadline still has time to aggregate (up to 300 s) before the execution times out.
    longest = max(parameters[name]["MaxValue"] for name in ("JobTimeoutDefaultSeconds", "JobTimeoutMaxSeconds"))
    assert longest + 300 + 300 <= settings.max_job_seconds


def test_the_watchdog_rule_names_the_state_machine_and_the_statuses_that_end_a_job() -> None:
    function = yaml_parse(TEMPLATE.read_text())["Resources"]["ExecutionStatusFunction"]
    pattern = function["Properties"]["Events"]["ExecutionEnded"]["Properties"]["Pattern"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": "QueryAllStateMachine"}]
